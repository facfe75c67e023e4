import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { LabConfig } from '../config/schema.js';
import { UsageError } from '../errors.js';
import { run } from '../exec.js';
import { hashOf } from '../plan/key.js';
import type { Storage } from '../storage/storage.js';
import { hostAptSources, pickDebianMirror } from './apt-sources.js';

/** What every machine needs to boot, network, and be checked. No systemd-resolved: machines resolve through the zone's DNS. */
export const BASE_PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'iproute2', 'iputils-ping', 'curl', 'ca-certificates'];

/** Bump when the way the base image is made changes, so cached images are rebuilt. */
const RECIPE_VERSION = 1;
const DEBOOTSTRAP_TIMEOUT_MS = 20 * 60_000;

export interface BaseImage {
  key: string;
  mirror: string;
  suite: string;
  packages: string[];
}

/** Resolves the image settings without touching the host (the mirror comes from the host's apt sources). */
export function describeBaseImage(config: LabConfig): BaseImage {
  const mirror = config.image.mirror ?? pickDebianMirror(hostAptSources());
  if (!mirror) {
    throw new UsageError('image.mirror: the host\'s apt sources name no Debian mirror; set image.mirror in the config');
  }
  const packages = [...new Set([...BASE_PACKAGES, ...config.image.packages])].sort();
  const key = hashOf({ recipe: RECIPE_VERSION, distribution: config.image.distribution, suite: config.image.suite, mirror, packages });
  return { key, mirror, suite: config.image.suite, packages };
}

export interface ImagePaths {
  /** Where the read-only base subvolume of this lab lives. */
  poolImage: string;
  /** Shared between labs: a tarball of each base image built on this host. */
  cacheTarball: string;
  /** Shared between labs: debootstrap's downloaded packages. */
  debootstrapCache: string;
}

export function imagePaths(config: LabConfig, storage: Storage, image: BaseImage): ImagePaths {
  return {
    poolImage: path.join(storage.root, 'images', `base@${image.key}`),
    cacheTarball: path.join(config.cacheDir, 'images', `${config.image.distribution}-${image.suite}-${image.key}.tar`),
    debootstrapCache: path.join(config.cacheDir, 'debootstrap', `${config.image.distribution}-${image.suite}`),
  };
}

/**
 * Makes sure the read-only base image is in the pool: from the shared tarball cache when
 * another lab (or an earlier run) built it, otherwise with debootstrap. Returns its path.
 */
export async function ensureBaseImage(
  image: BaseImage,
  paths: ImagePaths,
  storage: Storage,
  log: (line: string) => void,
): Promise<{ path: string; source: 'pool' | 'cache' | 'debootstrap' }> {
  if (existsSync(paths.poolImage)) return { path: paths.poolImage, source: 'pool' };
  const building = `${paths.poolImage}.partial`;
  await storage.remove(building);
  await storage.create(building);
  let source: 'cache' | 'debootstrap' = 'cache';
  if (existsSync(paths.cacheTarball)) {
    log(`importing base image from ${paths.cacheTarball}`);
    await run(['tar', '-xpf', paths.cacheTarball, '--numeric-owner', '--xattrs', '-C', building], { timeout: DEBOOTSTRAP_TIMEOUT_MS });
  } else {
    source = 'debootstrap';
    mkdirSync(paths.debootstrapCache, { recursive: true });
    log(`debootstrap ${image.suite} from ${image.mirror}`);
    await run(
      ['debootstrap', '--variant=minbase', `--include=${image.packages.join(',')}`, `--cache-dir=${paths.debootstrapCache}`, image.suite, building, image.mirror],
      { timeout: DEBOOTSTRAP_TIMEOUT_MS },
    );
    // Per-machine identity is written by each machine's system stage; the base carries none of the host's.
    writeFileSync(path.join(building, 'etc', 'hostname'), '');
    writeFileSync(path.join(building, 'etc', 'machine-id'), '');
    rmSync(path.join(building, 'var', 'cache', 'apt', 'archives'), { recursive: true, force: true });
    mkdirSync(path.join(building, 'var', 'cache', 'apt', 'archives', 'partial'), { recursive: true });
    await exportTarball(building, paths.cacheTarball);
  }
  await storage.seal(building, paths.poolImage);
  return { path: paths.poolImage, source };
}

/** Writes a root filesystem tarball; visible under its final name only once complete. */
export async function exportTarball(root: string, tarball: string): Promise<void> {
  mkdirSync(path.dirname(tarball), { recursive: true });
  const partial = `${tarball}.partial`;
  await run(['tar', '-cf', partial, '--numeric-owner', '--xattrs', '--one-file-system', '-C', root, '.'], { timeout: DEBOOTSTRAP_TIMEOUT_MS });
  renameSync(partial, tarball);
}
