import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import type { ReadableStream } from 'node:stream/web';
import type { LabConfig } from '../config/schema.js';
import { HostError, UsageError } from '../errors.js';
import { run } from '../exec.js';
import type { Tool } from '../host/prereq.js';
import { hashOf } from '../plan/key.js';
import { BUILD_TIMEOUT_MS, type ImageDriver, RECIPE_VERSION } from './image.js';
import { detectPackageManager, type PackageManager } from './packages.js';

const isUrl = (text: string) => /^https?:\/\//.test(text);

/**
 * Checks that a tarball holds a root filesystem lab can boot, and finds the directory it is in
 * (the Arch bootstrap tarball keeps it under root.x86_64/). Exit 2 with what is missing.
 */
export async function inspectTarball(tarball: string): Promise<{ stripComponents: number }> {
  const listing = await run(['tar', '-tf', tarball], { allowFailure: true, timeout: 5 * 60_000 });
  if (listing.exitCode !== 0) throw new UsageError(`image.tarball: ${tarball} is not a tar archive lab can read: ${listing.stderr.trim().split('\n')[0]}`);
  const entries = listing.stdout.split('\n').map((e) => e.replace(/^\.\//, ''));
  const has = (suffix: string, prefix: string) => entries.some((e) => e === `${prefix}${suffix}`);
  for (const prefix of ['', ...new Set(entries.map((e) => e.split('/')[0] + '/'))]) {
    const osRelease = has('etc/os-release', prefix) || has('usr/lib/os-release', prefix);
    const init = has('lib/systemd/systemd', prefix) || has('usr/lib/systemd/systemd', prefix);
    if (osRelease && init) return { stripComponents: prefix === '' ? 0 : 1 };
    if (prefix === '' && (osRelease || init)) {
      throw new UsageError(`image.tarball: ${tarball} is not a bootable root filesystem: no ${osRelease ? 'systemd (usr/lib/systemd/systemd)' : 'os-release (etc/os-release)'}`);
    }
  }
  throw new UsageError(`image.tarball: ${tarball} is not a root filesystem: no etc/os-release and usr/lib/systemd/systemd in it`);
}

/** Any root filesystem tarball (a path or an http(s) URL), as `machinectl import-tar` takes: the CoreOS fallback. */
export class TarballImage implements ImageDriver {
  readonly source = 'tarball' as const;
  readonly distribution: string;
  readonly suite: string;
  readonly key: string;
  readonly tarball: string;

  constructor(config: LabConfig) {
    this.tarball = config.image.tarball!;
    this.distribution = config.image.distribution;
    this.suite = config.image.suite;
    let identity: unknown = this.tarball;
    if (!isUrl(this.tarball) && existsSync(this.tarball)) {
      const stat = statSync(this.tarball);
      identity = { tarball: this.tarball, size: stat.size, mtime: stat.mtimeMs }; // cheap: the file is not read on every command
    }
    this.key = hashOf({ recipe: RECIPE_VERSION, source: 'tarball', identity });
  }

  describe(): string {
    return `tarball ${this.tarball}`;
  }

  tools(): Tool[] {
    return [{ command: 'tar', debianPackage: 'tar', why: 'imports the root filesystem tarball' }];
  }

  async check(): Promise<void> {
    if (isUrl(this.tarball)) return; // read when downloaded, before anything is built from it
    if (!existsSync(this.tarball)) {
      throw new UsageError(`image.tarball: ${this.tarball} does not exist`, 'point it at a root filesystem tarball (lab image export makes one), or use image.source debootstrap');
    }
    await inspectTarball(this.tarball);
  }

  async build(target: string, cacheDir: string, log: (line: string) => void): Promise<void> {
    const file = await this.localCopy(cacheDir);
    const { stripComponents } = await inspectTarball(file);
    log(`importing ${this.tarball}`);
    await run(['tar', '-xpf', file, '--numeric-owner', '--xattrs', `--strip-components=${stripComponents}`, '-C', target], { timeout: BUILD_TIMEOUT_MS });
  }

  packageManager(root: string): PackageManager | undefined {
    return detectPackageManager(root);
  }

  /** An http(s) tarball is downloaded once into the cache (the lab's own network is never used). */
  private async localCopy(cacheDir: string): Promise<string> {
    if (!isUrl(this.tarball)) return this.tarball;
    const name = `${createHash('sha256').update(this.tarball).digest('hex').slice(0, 16)}-${path.basename(new URL(this.tarball).pathname)}`;
    const file = path.join(cacheDir, 'downloads', name);
    if (existsSync(file)) return file;
    mkdirSync(path.dirname(file), { recursive: true });
    const [{ Readable }, { pipeline }] = await Promise.all([import('node:stream'), import('node:stream/promises')]); // only for a download
    const response = await fetch(this.tarball);
    if (!response.ok || !response.body) throw new HostError(`cannot download ${this.tarball}: HTTP ${response.status}`);
    await pipeline(Readable.fromWeb(response.body as ReadableStream), createWriteStream(`${file}.partial`));
    renameSync(`${file}.partial`, file);
    return file;
  }
}
