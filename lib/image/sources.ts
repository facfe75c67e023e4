import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream } from 'node:stream/web';
import type { LabConfig } from '../config/schema.js';
import { LabError, UsageError } from '../errors.js';
import { run } from '../exec.js';
import { findCommand } from '../host/prereq.js';
import { hashOf } from '../plan/key.js';
import { hostAptSources, pickDebianMirror } from './apt-sources.js';

/** What every machine needs to boot, network, and be checked. No systemd-resolved: machines resolve through the zone's DNS. */
export const DEBIAN_PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'iproute2', 'iputils-ping', 'curl', 'ca-certificates'];
/** The seed's base container: `base` plus what lab needs, without what a container never uses. */
export const ARCH_PACKAGES = ['base', 'iproute2', 'iputils', 'curl'];
export const ARCH_IGNORE = ['linux', 'linux-firmware', 'cryptsetup', 'jfsutils', 'lvm2', 'nano', 'netctl', 'reiserfsprogs', 'vi', 'xfsprogs', 'mdadm', 'device-mapper', 'licenses', 'man-pages', 'pcmciautils'];

/** Bump when the way base images are made changes, so cached images are rebuilt. */
const RECIPE_VERSION = 1;
const BUILD_TIMEOUT_MS = 20 * 60_000;

export type ImageSourceKind = 'debootstrap' | 'pacstrap' | 'tarball';

export interface BaseImage {
  key: string;
  source: ImageSourceKind;
  /** One line for doctor and status: where the image comes from and why. */
  description: string;
  packages: string[];
  suite: string;
  mirror?: string;
  /** tarball: a local path or an http(s) URL. */
  tarball?: string;
}

const isUrl = (text: string) => /^https?:\/\//.test(text);

/** Resolves the image settings and checks they can work here; touches nothing (exit 2 when they cannot). */
export function describeBaseImage(config: LabConfig): BaseImage {
  const { image } = config;
  const extra = image.packages;
  if (image.source === 'tarball') {
    const tarball = image.tarball!;
    let identity: unknown = tarball;
    if (!isUrl(tarball)) {
      if (!existsSync(tarball)) {
        throw new UsageError(`image.tarball: ${tarball} does not exist`, 'point it at a root filesystem tarball (lab image export makes one), or use image.source debootstrap');
      }
      const stat = statSync(tarball);
      identity = { tarball, size: stat.size, mtime: stat.mtimeMs }; // cheap: the file is not read on every command
    }
    const key = hashOf({ recipe: RECIPE_VERSION, source: 'tarball', identity });
    return { key, source: 'tarball', description: `tarball ${tarball}`, packages: [], suite: image.suite, tarball };
  }
  if (image.source === 'pacstrap') {
    const missing = ['pacstrap', 'pacman'].filter((tool) => !findCommand(tool));
    if (missing.length) {
      throw new UsageError(
        `image.source pacstrap: ${missing.join(' and ')} not found: pacstrap builds Arch images on an Arch host`,
        'use image.source debootstrap (Debian and Ubuntu hosts) or image.source tarball (any host, e.g. the Arch bootstrap tarball)',
      );
    }
    const packages = [...new Set([...ARCH_PACKAGES, ...extra])].sort();
    const key = hashOf({ recipe: RECIPE_VERSION, source: 'pacstrap', packages, ignore: ARCH_IGNORE });
    return { key, source: 'pacstrap', description: `pacstrap (Arch) ${packages.join(' ')}`, packages, suite: 'rolling' };
  }
  const mirror = image.mirror ?? pickDebianMirror(hostAptSources());
  if (!mirror) throw new UsageError("image.mirror: the host's apt sources name no Debian mirror; set image.mirror in the config");
  if (!findCommand('debootstrap')) {
    throw new UsageError('image.source debootstrap: debootstrap not found', 'install it (apt-get install debootstrap), or use image.source tarball');
  }
  const packages = [...new Set([...DEBIAN_PACKAGES, ...extra])].sort();
  const key = hashOf({ recipe: RECIPE_VERSION, distribution: image.distribution, suite: image.suite, mirror, packages });
  const origin = image.mirror ? 'from the config' : "the mirror the host's apt sources name";
  return { key, source: 'debootstrap', description: `debootstrap ${image.distribution} ${image.suite} from ${mirror} (${origin})`, packages, suite: image.suite, mirror };
}

export function debootstrapCommand(image: BaseImage, target: string, cacheDir: string): string[] {
  return ['debootstrap', '--variant=minbase', `--include=${image.packages.join(',')}`, `--cache-dir=${cacheDir}`, image.suite, target, image.mirror!];
}

/** The seed's pacstrap call, made non-interactive (--noconfirm instead of piping "n" to -i). */
export function pacstrapCommand(image: BaseImage, target: string): string[] {
  return ['pacstrap', '-c', '-G', '-M', target, ...image.packages, '--ignore', ARCH_IGNORE.join(','), '--noconfirm', '--needed'];
}

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

/** An http(s) tarball is downloaded once into the cache (the lab's own network is never used). */
async function localTarball(tarball: string, cacheDir: string): Promise<string> {
  if (!isUrl(tarball)) return tarball;
  const file = path.join(cacheDir, 'downloads', `${createHash('sha256').update(tarball).digest('hex').slice(0, 16)}-${path.basename(new URL(tarball).pathname)}`);
  if (existsSync(file)) return file;
  mkdirSync(path.dirname(file), { recursive: true });
  const response = await fetch(tarball);
  if (!response.ok || !response.body) throw new LabError(`cannot download ${tarball}: HTTP ${response.status}`, 3);
  await pipeline(Readable.fromWeb(response.body as ReadableStream), createWriteStream(`${file}.partial`));
  renameSync(`${file}.partial`, file);
  return file;
}

/** Validates what can only be checked by reading the source (a tarball's content): before anything is created. */
export async function checkImageSource(image: BaseImage): Promise<void> {
  if (image.source === 'tarball' && !isUrl(image.tarball!)) await inspectTarball(image.tarball!);
}

/** Fills `target` (an empty directory) with the base image's root filesystem. */
export async function buildRoot(image: BaseImage, target: string, cacheDir: string, distribution: string, log: (line: string) => void): Promise<void> {
  if (image.source === 'tarball') {
    const file = await localTarball(image.tarball!, cacheDir);
    const { stripComponents } = await inspectTarball(file);
    log(`importing ${image.tarball}`);
    await run(['tar', '-xpf', file, '--numeric-owner', '--xattrs', `--strip-components=${stripComponents}`, '-C', target], { timeout: BUILD_TIMEOUT_MS });
    return;
  }
  if (image.source === 'pacstrap') {
    log('pacstrap');
    await run(pacstrapCommand(image, target), { timeout: BUILD_TIMEOUT_MS });
    return;
  }
  const debs = path.join(cacheDir, 'debootstrap', `${distribution}-${image.suite}`);
  mkdirSync(debs, { recursive: true });
  log(`debootstrap ${image.suite} from ${image.mirror}`);
  await run(debootstrapCommand(image, target, debs), { timeout: BUILD_TIMEOUT_MS });
}
