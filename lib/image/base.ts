import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { LabConfig } from '../config/schema.js';
import { run } from '../exec.js';
import type { Storage } from '../storage/storage.js';
import { type BaseImage, buildRoot } from './sources.js';

const TAR_TIMEOUT_MS = 20 * 60_000;

export interface ImagePaths {
  /** The read-only base image in this lab's pool. */
  poolImage: string;
  /** Shared between labs: a tarball of each base image built on this host. */
  cacheTarball: string;
}

export function imagePaths(config: LabConfig, storage: Storage, image: BaseImage): ImagePaths {
  return {
    poolImage: path.join(storage.root, 'images', `base@${image.key}`),
    cacheTarball: path.join(config.cacheDir, 'images', `${config.image.distribution}-${image.suite}-${image.key}.tar`),
  };
}

/**
 * Makes sure the read-only base image is in the pool: from the shared tarball cache when
 * another lab (or an earlier run) built it, otherwise from its source. Returns its path.
 */
export async function ensureBaseImage(
  image: BaseImage,
  paths: ImagePaths,
  storage: Storage,
  config: LabConfig,
  log: (line: string) => void,
): Promise<{ path: string; source: 'pool' | 'cache' | BaseImage['source'] }> {
  if (existsSync(paths.poolImage)) return { path: paths.poolImage, source: 'pool' };
  const building = `${paths.poolImage}.partial`;
  await storage.remove(building);
  await storage.create(building);
  const cached = existsSync(paths.cacheTarball);
  if (cached) {
    log(`importing base image from ${paths.cacheTarball}`);
    await run(['tar', '-xpf', paths.cacheTarball, '--numeric-owner', '--xattrs', '-C', building], { timeout: TAR_TIMEOUT_MS });
  } else {
    await buildRoot(image, building, config.cacheDir, config.image.distribution, log);
    // Per-machine identity is written by each machine's system stage; the base carries none of the host's.
    writeFileSync(path.join(building, 'etc', 'hostname'), '');
    writeFileSync(path.join(building, 'etc', 'machine-id'), '');
    rmSync(path.join(building, 'var', 'cache', 'apt', 'archives'), { recursive: true, force: true });
    // A tarball source is its own cache.
    if (image.source !== 'tarball') await exportTarball(building, paths.cacheTarball);
  }
  await storage.seal(building, paths.poolImage);
  return { path: paths.poolImage, source: cached ? 'cache' : image.source };
}

/** Writes a root filesystem tarball (as `machinectl import-tar` takes); visible under its final name only once complete. */
export async function exportTarball(root: string, tarball: string): Promise<void> {
  mkdirSync(path.dirname(tarball), { recursive: true });
  const partial = `${tarball}.partial`;
  await run(['tar', '-cf', partial, '--numeric-owner', '--xattrs', '--one-file-system', '-C', root, '.'], { timeout: TAR_TIMEOUT_MS });
  renameSync(partial, tarball);
}
