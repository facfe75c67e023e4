import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  CACHE_FORMAT,
  type CacheBase,
  type CacheEntry,
  cacheEntries,
  type CacheManifest,
  type CacheObject,
  checkBase,
  combinedKey,
  entryName,
  MANIFEST_FILE,
  objectFile,
  OBJECTS_DIR,
  parentOf,
  parseManifest,
  sameEntry,
} from '../cache/manifest.js';
import { InfraError } from '../errors.js';
import { currentBase, poolBasePath } from '../image/base.js';
import { privateDir } from '../paths.js';
import type { Lab } from './lab-types.js';
import { planFor } from './planning.js';
import { withSession } from './session.js';
import { markCreated } from './snapshots.js';

export interface CacheKeyReport {
  /** For actions/cache's `key`. */
  key: string;
  /** For its `restore-keys`: an older cache of the same base and storage, of which a pull takes what still matches. */
  restorePrefix: string;
  snapshots: { name: string; key: string }[];
}

export interface PushReport {
  dir: string;
  objects: { name: string; key: string; action: 'written' | 'kept' | 'not built'; bytes?: number }[];
  durationMs: number;
}

export interface PullReport {
  dir: string;
  /** False when the directory holds no cache (a first run, an actions/cache miss): lab up builds everything. */
  found: boolean;
  /** What the plan needs and the pool lacked. */
  objects: { name: string; key: string; action: 'imported' | 'not in the cache' | 'refused'; reason?: string; bytes?: number }[];
  /** What the plan needs and the pool had already. */
  present: number;
  durationMs: number;
}

/** The plan's snapshots, and one key for them all (`lab cache key`). Reads the pool's base pointer, changes nothing. */
export function cacheKey(lab: Lab): CacheKeyReport {
  const entries = cacheEntries(planFor(lab));
  const key = combinedKey(lab.storage.kind, entries);
  return { key, restorePrefix: key.slice(0, key.lastIndexOf('-') + 1), snapshots: entries.map((e) => ({ name: entryName(e), key: e.key })) };
}

function labBase(lab: Lab): CacheBase {
  return { key: currentBase(lab).key, image: lab.image.key, distribution: lab.image.distribution, suite: lab.image.suite };
}

/** Where an entry's snapshot is in the pool. */
function snapshotPath(lab: Lab, entry: CacheEntry): string {
  return entry.kind === 'base' ? poolBasePath(lab.storage, entry.key) : lab.dirs.snapshot(entry.machine, entry.stage, entry.key);
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const sizeOf = (file: string) => (existsSync(file) ? statSync(file).size : undefined);

/** Every file under `dir`, relative to `root`. */
function filesUnder(root: string, dir = root): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(root, file) : [path.relative(root, file)];
  });
}

const manifestIn = (dir: string) => path.join(dir, MANIFEST_FILE);

/**
 * `lab cache push <dir>`: every snapshot the plan uses (the base image included) into `dir`, each
 * incremental against the one it is built on where the pool has it. Objects go in under new names
 * (their key and digest) once complete, the manifest last, and only then are the objects no
 * manifest names removed: a push stopped anywhere leaves the previous cache whole. An object the
 * previous manifest has for the same snapshot, built on the same parent, is kept as it is.
 */
export async function pushCache(lab: Lab, dir: string): Promise<PushReport> {
  const started = Date.now();
  const target = path.resolve(dir);
  return withSession(lab, `cache push ${target}`, { action: 'cache push', image: false }, async () => {
    const base = labBase(lab);
    if (!existsSync(currentBase(lab).path)) throw new InfraError('nothing to push: the base image is not built yet', 'build the lab first: lab up');
    privateDir(target); // the objects hold every machine's files, secrets included
    for (const file of filesUnder(target).filter((f) => f.endsWith('.partial'))) rmSync(path.join(target, file)); // an interrupted push's
    const previous = previousManifest(target, lab.storage.kind, base);
    const entries = cacheEntries(planFor(lab));
    const objects: CacheObject[] = [];
    const report: PushReport['objects'] = [];
    for (const entry of entries) {
      const snapshot = snapshotPath(lab, entry);
      const row = { name: entryName(entry), key: entry.key };
      if (!existsSync(snapshot)) {
        report.push({ ...row, action: 'not built' });
        continue;
      }
      const parentEntry = parentOf(entries, entry);
      const parent = parentEntry && existsSync(snapshotPath(lab, parentEntry)) ? snapshotPath(lab, parentEntry) : undefined;
      const identity = await lab.storage.identity(snapshot);
      const parentIdentity = parent ? await lab.storage.identity(parent) : undefined;
      const kept = previous?.objects.find(
        (o) => sameEntry(o, entry) && o.identity === identity && o.parentIdentity === parentIdentity && sizeOf(path.join(target, objectFile(o, lab.storage.kind))) === o.size,
      );
      if (kept) {
        objects.push(kept);
        report.push({ ...row, action: 'kept', bytes: kept.size });
        continue;
      }
      // Under .partial until it has its name, which holds its digest.
      const partial = path.join(target, OBJECTS_DIR, `${entryName(entry)}.partial`);
      await lab.storage.exportSnapshot(snapshot, partial, parent);
      const object: CacheObject = { ...entry, sha256: await sha256Of(partial), size: statSync(partial).size, ...(identity ? { identity } : {}), ...(parentIdentity ? { parentIdentity } : {}) };
      const file = path.join(target, objectFile(object, lab.storage.kind));
      privateDir(path.dirname(file));
      renameSync(partial, file);
      objects.push(object);
      report.push({ ...row, action: 'written', bytes: object.size });
    }
    const manifest: CacheManifest = { format: CACHE_FORMAT, storage: lab.storage.kind, base, lab: lab.config.name, createdAt: new Date().toISOString(), objects };
    writeFileSync(`${manifestIn(target)}.partial`, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
    renameSync(`${manifestIn(target)}.partial`, manifestIn(target));
    const named = new Set(objects.map((o) => objectFile(o, lab.storage.kind)));
    for (const file of filesUnder(target, path.join(target, OBJECTS_DIR))) if (!named.has(file)) rmSync(path.join(target, file));
    return { dir: target, objects: report, durationMs: Date.now() - started };
  });
}

/** The manifest a push replaces, when its objects can be kept: same format, storage and base. */
function previousManifest(dir: string, storage: CacheManifest['storage'], base: CacheBase): CacheManifest | undefined {
  if (!existsSync(manifestIn(dir))) return undefined;
  try {
    const manifest = parseManifest(readFileSync(manifestIn(dir), 'utf8'), manifestIn(dir), storage);
    return manifest.base.key === base.key ? manifest : undefined;
  } catch {
    return undefined; // another format or storage: replaced whole
  }
}

/**
 * `lab cache pull <dir>`: what the plan needs and the pool lacks, from `dir`, each object checked
 * against the manifest's size and sha256 before it is imported. A truncated or altered object is
 * refused, and its stage (with those built on it) is left for lab up to build. The manifest's
 * format, storage (checked first, before the host is touched) and base must be this lab's (exit 2).
 * An incremental object whose parent the pool holds only as something else (a base it built
 * itself) gets that parent from the cache too, in the staging directory, removed afterwards.
 */
export async function pullCache(lab: Lab, dir: string): Promise<PullReport> {
  const started = Date.now();
  const source = path.resolve(dir);
  const manifest = existsSync(manifestIn(source)) ? parseManifest(readFileSync(manifestIn(source), 'utf8'), manifestIn(source), lab.storage.kind) : undefined;
  if (!manifest) return { dir: source, found: false, objects: [], present: 0, durationMs: Date.now() - started };
  return withSession(lab, `cache pull ${source}`, { action: 'cache pull', image: false }, async () => {
    checkBase(manifest, labBase(lab), manifestIn(source));
    const needed = cacheEntries(planFor(lab)).filter((entry) => !existsSync(snapshotPath(lab, entry)));
    const present = cacheEntries(planFor(lab)).length - needed.length;
    const importer = new Importer(lab, source, manifest, await lab.storage.heldIdentities());
    const objects: PullReport['objects'] = [];
    try {
      for (const entry of needed) {
        const row = { name: entryName(entry), key: entry.key };
        const object = manifest.objects.find((o) => sameEntry(o, entry));
        if (!object) {
          objects.push({ ...row, action: 'not in the cache' });
          continue;
        }
        const refused = await importer.import(object, snapshotPath(lab, entry));
        objects.push(refused ? { ...row, action: 'refused', reason: refused } : { ...row, action: 'imported', bytes: object.size });
      }
    } finally {
      await lab.storage.remove(lab.dirs.cacheStaging);
    }
    return { dir: source, found: true, objects, present, durationMs: Date.now() - started };
  });
}

/** Imports a manifest's objects, each checked once, parents first where an incremental one needs them. */
class Importer {
  private readonly checked = new Map<CacheObject, string | undefined>();
  private staged = 0;

  constructor(
    private readonly lab: Lab,
    private readonly dir: string,
    private readonly manifest: CacheManifest,
    /** Identities of the snapshots the pool's filesystem holds: what incremental objects can be received on. */
    private readonly held: Set<string>,
  ) {}

  /** Imports `object` as `target`; returns why it was refused, or undefined once it is in place. */
  async import(object: CacheObject, target: string): Promise<string | undefined> {
    if (object.parentIdentity && !this.held.has(object.parentIdentity)) {
      const parent = this.manifest.objects.find((o) => o.identity === object.parentIdentity);
      if (!parent) return 'the snapshot it is built on is neither here nor in the cache';
      const refused = await this.import(parent, path.join(this.lab.dirs.cacheStaging, `parent-${this.staged++}`));
      if (refused) return `the snapshot it is built on, ${entryName(parent)}, was refused: ${refused}`;
    }
    const refused = await this.check(object);
    if (refused) return refused;
    await this.lab.storage.importSnapshot(path.join(this.dir, objectFile(object, this.manifest.storage)), target, this.lab.dirs.cacheStaging);
    if (object.identity) this.held.add(object.identity);
    if (object.kind === 'stage') markCreated(target);
    return undefined;
  }

  /** Size, then sha256, against the manifest: undefined when the object is whole. */
  private async check(object: CacheObject): Promise<string | undefined> {
    if (!this.checked.has(object)) {
      const file = path.join(this.dir, objectFile(object, this.manifest.storage));
      const size = sizeOf(file);
      this.checked.set(
        object,
        size === undefined
          ? `${objectFile(object, this.manifest.storage)} is missing`
          : size !== object.size
            ? `${objectFile(object, this.manifest.storage)} is truncated or altered (${size} bytes, the manifest says ${object.size})`
            : (await sha256Of(file)) !== object.sha256
              ? `${objectFile(object, this.manifest.storage)} is altered (its sha256 is not the manifest's)`
              : undefined,
      );
    }
    return this.checked.get(object);
  }
}
