import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { LabConfig } from '../config/schema.js';
import { UsageError } from '../errors.js';
import { run } from '../exec.js';
import type { Tool } from '../host/prereq.js';
import { hashOf } from '../plan/key.js';
import { BUILD_TIMEOUT_MS, type ImageDriver, RECIPE_VERSION } from './image.js';
import { hostAptSources, upgradeSourcesList } from './apt-sources.js';
import { chooseMirror, type HostDistribution, type MirrorChoice } from './mirror.js';
import { apt, type PackageManager } from './packages.js';

/** What every machine needs to boot, network, and be checked. No systemd-resolved: machines resolve through the zone's DNS. */
export const DEBIAN_PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'iproute2', 'iputils-ping', 'curl', 'ca-certificates'];

export function debootstrapCommand(suite: string, packages: readonly string[], mirror: string, target: string, cacheDir: string): string[] {
  return ['debootstrap', '--variant=minbase', `--include=${packages.join(',')}`, `--cache-dir=${cacheDir}`, suite, target, mirror];
}

/** debootstrap's line per package, beside its phases (what `lab up` shows). */
const PER_PACKAGE_LINE = /^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) \S+( \S+)?$/;

/** Debian and Ubuntu images, built with debootstrap from the chosen mirror. */
export class DebootstrapImage implements ImageDriver {
  readonly source = 'debootstrap' as const;
  readonly distribution: string;
  readonly suite: string;
  readonly key: string;
  readonly packages: string[];
  readonly mirror: MirrorChoice;

  constructor(config: LabConfig, host: HostDistribution) {
    this.distribution = config.image.distribution;
    this.suite = config.image.suite;
    this.packages = [...new Set([...DEBIAN_PACKAGES, ...config.image.packages])].sort();
    this.mirror = chooseMirror(this.distribution, config.image.mirror, host);
    this.key = hashOf({ recipe: RECIPE_VERSION, distribution: this.distribution, suite: this.suite, mirror: this.mirror.mirror ?? null, packages: this.packages });
  }

  upgradeSources(): string | undefined {
    return this.mirror.mirror ? upgradeSourcesList(this.distribution, this.suite, this.mirror.mirror, hostAptSources()) : undefined;
  }

  describe(): string {
    return `debootstrap ${this.distribution} ${this.suite} from ${this.mirror.mirror ?? '(no mirror)'}: ${this.mirror.why}`;
  }

  tools(): Tool[] {
    return [{ command: 'debootstrap', debianPackage: 'debootstrap', why: 'builds the base image' }];
  }

  async check(): Promise<void> {
    if (!this.mirror.mirror) throw new UsageError(`image.mirror: ${this.mirror.why}`);
  }

  async build(target: string, cacheDir: string, log: (line: string) => void): Promise<void> {
    const debs = path.join(cacheDir, 'debootstrap', `${this.distribution}-${this.suite}`);
    mkdirSync(debs, { recursive: true });
    log(`debootstrap ${this.suite} from ${this.mirror.mirror}`);
    await run(debootstrapCommand(this.suite, this.packages, this.mirror.mirror!, target, debs), { timeout: BUILD_TIMEOUT_MS, onLine: log });
  }

  isDetail(line: string): boolean {
    return PER_PACKAGE_LINE.test(line);
  }

  packageManager(): PackageManager {
    return apt;
  }
}
