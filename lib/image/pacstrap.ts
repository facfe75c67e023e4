import type { LabConfig } from '../config/schema.js';
import { UsageError } from '../errors.js';
import { run } from '../exec.js';
import { findCommand, type Tool } from '../host/prereq.js';
import { hashOf } from '../plan/key.js';
import { BUILD_TIMEOUT_MS, type ImageDriver, RECIPE_VERSION } from './image.js';
import { type PackageManager, pacman } from './packages.js';

/** The seed's base container: `base` plus what lab needs, without what a container never uses. */
export const ARCH_PACKAGES = ['base', 'iproute2', 'iputils', 'curl'];
export const ARCH_IGNORE = ['linux', 'linux-firmware', 'cryptsetup', 'jfsutils', 'lvm2', 'nano', 'netctl', 'reiserfsprogs', 'vi', 'xfsprogs', 'mdadm', 'device-mapper', 'licenses', 'man-pages', 'pcmciautils'];

/** The seed's pacstrap call, made non-interactive (--noconfirm instead of piping "n" to -i). */
export function pacstrapCommand(packages: readonly string[], target: string): string[] {
  return ['pacstrap', '-c', '-G', '-M', target, ...packages, '--ignore', ARCH_IGNORE.join(','), '--noconfirm', '--needed'];
}

/** Arch images, built with pacstrap from the host's pacman mirror list (Arch hosts). */
export class PacstrapImage implements ImageDriver {
  readonly source = 'pacstrap' as const;
  readonly distribution = 'arch';
  readonly suite = 'rolling';
  readonly key: string;
  readonly packages: string[];

  constructor(config: LabConfig) {
    this.packages = [...new Set([...ARCH_PACKAGES, ...config.image.packages])].sort();
    this.key = hashOf({ recipe: RECIPE_VERSION, source: 'pacstrap', packages: this.packages, ignore: ARCH_IGNORE });
  }

  describe(): string {
    return `pacstrap (Arch) ${this.packages.join(' ')}, from the mirrors in the host's pacman mirror list`;
  }

  tools(): Tool[] {
    return [
      { command: 'pacstrap', debianPackage: 'arch-install-scripts', why: 'builds the Arch base image' },
      { command: 'pacman', debianPackage: 'pacman-package-manager', why: 'pacstrap installs with it' },
    ];
  }

  async check(): Promise<void> {
    const missing = ['pacstrap', 'pacman'].filter((tool) => !findCommand(tool));
    if (missing.length) {
      throw new UsageError(
        `image.source pacstrap: ${missing.join(' and ')} not found: pacstrap builds Arch images on an Arch host`,
        'use image.source debootstrap (Debian and Ubuntu hosts) or image.source tarball (any host, e.g. the Arch bootstrap tarball)',
      );
    }
  }

  async build(target: string, _cacheDir: string, log: (line: string) => void): Promise<void> {
    log('pacstrap');
    await run(pacstrapCommand(this.packages, target), { timeout: BUILD_TIMEOUT_MS, onLine: log });
  }

  packageManager(): PackageManager {
    return pacman;
  }
}
