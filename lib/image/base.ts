import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathInRoot } from '../root-path.js';
import { acquireLock } from '../state/lock.js';
import type { Storage } from '../storage/storage.js';
import { exportTarball, importTarball } from '../storage/tar.js';
import type { ImageDriver, ImageSourceKind } from './image.js';

const TAR_TIMEOUT_MS = 20 * 60_000;

/** Inside every base image lab makes or upgrades: its key, so a machine can tell which base it was built on. */
export const BASE_KEY_FILE = 'etc/lab-base-key';

export interface ImagePaths {
  /** The read-only base image in this lab's pool. */
  poolImage: string;
  /** Shared between labs: a tarball of each base image built on this host. */
  cacheTarball: string;
}

/**
 * A pool's base images: `images/base@<key>` each, the one built from the config and those `lab
 * image upgrade` made, and `images/current.json`, the pointer to the upgraded one in use.
 */
export const poolImagesDir = (storage: Storage) => path.join(storage.root, 'images');
export const poolBasePath = (storage: Storage, key: string) => path.join(poolImagesDir(storage), `base@${key}`);
const pointerFile = (storage: Storage) => path.join(poolImagesDir(storage), 'current.json');

/** The keys of the base images the pool holds. */
export function poolBaseKeys(storage: Storage): string[] {
  const dir = poolImagesDir(storage);
  return existsSync(dir) ? readdirSync(dir).map((e) => /^base@([0-9a-f]+)$/.exec(e)?.[1]).filter((k): k is string => k !== undefined) : [];
}

/** What names the upgraded base in use. */
export interface BasePointer {
  /** The image definition (the image driver's key) it upgrades; a changed definition starts over. */
  configKey: string;
  key: string;
  from: string;
  createdAt: string;
}

export function readBasePointer(storage: Storage): BasePointer | undefined {
  try {
    return JSON.parse(readFileSync(pointerFile(storage), 'utf8')) as BasePointer;
  } catch {
    return undefined;
  }
}

/** Swaps the pointer in whole: until it is renamed into place, the old base is the base. */
export function writeBasePointer(storage: Storage, pointer: BasePointer): void {
  writeFileSync(`${pointerFile(storage)}.tmp`, `${JSON.stringify(pointer, null, 2)}\n`);
  renameSync(`${pointerFile(storage)}.tmp`, pointerFile(storage));
}

/**
 * The base image stages build on: the one `lab image upgrade` made last (for this image
 * definition), else the one built from the config. Its key is the parent key of every `system`.
 */
export function currentBase(lab: { storage: Storage; image: ImageDriver }): { key: string; path: string; upgradedFrom?: string } {
  const pointer = readBasePointer(lab.storage);
  if (pointer && pointer.configKey === lab.image.key) {
    const upgraded = poolBasePath(lab.storage, pointer.key);
    if (existsSync(upgraded)) return { key: pointer.key, path: upgraded, upgradedFrom: pointer.from };
  }
  return { key: lab.image.key, path: poolBasePath(lab.storage, lab.image.key) };
}

export function imagePaths(cacheDir: string, storage: Storage, image: ImageDriver): ImagePaths {
  return {
    poolImage: poolBasePath(storage, image.key),
    cacheTarball: path.join(cacheDir, 'images', `${image.distribution}-${image.suite}-${image.key}.tar`),
  };
}

/**
 * Makes sure the read-only base image is in the pool: from the shared tarball cache when
 * another lab (or an earlier run) built it, otherwise from its source. Returns its path.
 */
export async function ensureBaseImage(
  image: ImageDriver,
  paths: ImagePaths,
  storage: Storage,
  cacheDir: string,
  log: (line: string) => void,
): Promise<{ path: string; source: 'pool' | 'cache' | ImageSourceKind }> {
  if (existsSync(paths.poolImage)) return { path: paths.poolImage, source: 'pool' };
  // Two labs coming up at once on a fresh host build the base once: the second waits and imports it.
  const lock = await acquireLock(`${paths.cacheTarball}.lock`, 'build a base image', { waitMs: TAR_TIMEOUT_MS, what: 'the shared base image cache' });
  try {
    return await buildOrImport(image, paths, storage, cacheDir, log);
  } finally {
    lock.release();
  }
}

async function buildOrImport(
  image: ImageDriver,
  paths: ImagePaths,
  storage: Storage,
  cacheDir: string,
  log: (line: string) => void,
): Promise<{ path: string; source: 'cache' | ImageSourceKind }> {
  const building = `${paths.poolImage}.partial`;
  await storage.remove(building);
  await storage.create(building);
  const cached = existsSync(paths.cacheTarball);
  if (cached) {
    log(`importing the base image from ${paths.cacheTarball}`);
    await importTarball(paths.cacheTarball, building);
  } else {
    await image.build(building, cacheDir, log);
    // Per-machine identity is written by each machine's system stage; the base carries none of the host's.
    writeFileSync(path.join(building, 'etc', 'hostname'), '');
    writeFileSync(path.join(building, 'etc', 'machine-id'), '');
    const pm = image.packageManager(building);
    for (const file of pm?.configFiles ?? []) {
      const target = pathInRoot(building, file.path);
      mkdirSync(path.dirname(target), { recursive: true });
      writeFileSync(target, file.content);
    }
    if (pm) rmSync(path.join(building, pm.cacheDir), { recursive: true, force: true });
    // A tarball source is its own cache.
    if (image.source !== 'tarball') {
      log(`caching the base image as ${paths.cacheTarball}`);
      await exportTarball(building, paths.cacheTarball);
    }
  }
  // Which base a machine was built on, readable inside it (lab image upgrade writes its own key).
  mkdirSync(path.join(building, 'etc'), { recursive: true });
  writeFileSync(path.join(building, BASE_KEY_FILE), `${image.key}\n`);
  await storage.seal(building, paths.poolImage);
  log(`base image ${image.key} ready`);
  return { path: paths.poolImage, source: cached ? 'cache' : image.source };
}

