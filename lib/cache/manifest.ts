import { z } from 'zod';
import { UsageError } from '../errors.js';
import { hashOf } from '../plan/key.js';
import type { Plan } from '../plan/plan.js';

/**
 * A stage cache directory (`lab cache push`/`pull`): `manifest.json`, written last, and one object
 * per snapshot under `objects/`, each named by its key and the start of its sha256, so that a push
 * never overwrites an object an older manifest names. Pure: what the directory holds and how it is
 * checked; engine/cache.ts moves the snapshots.
 */

/** Bumped when what a cache directory holds changes meaning: a lab refuses another format's manifest. */
export const CACHE_FORMAT = 1;
export const MANIFEST_FILE = 'manifest.json';
export const OBJECTS_DIR = 'objects';

export type StorageKind = 'btrfs' | 'copy';

/** A snapshot the plan uses: the base image, or one machine's stage (its own or a controller stage) with the key of the one it is built on. */
export type CacheEntry = { kind: 'base'; key: string } | { kind: 'stage'; machine: string; stage: string; key: string; parentKey: string };

/** An entry as exported: its file's digest and size, and on btrfs the identities its stream carries (its own, and the parent's it is incremental against). */
export type CacheObject = CacheEntry & { sha256: string; size: number; identity?: string; parentIdentity?: string };

/** The base image a cache's stages were built on: pulling into a lab on another base would match no key. */
export interface CacheBase {
  key: string;
  /** The image definition's key (lab image upgrade makes bases of other keys from it). */
  image: string;
  distribution: string;
  suite: string;
}

export interface CacheManifest {
  format: number;
  storage: StorageKind;
  base: CacheBase;
  /** The lab that pushed it, and when: for people, not checked. */
  lab: string;
  createdAt: string;
  objects: CacheObject[];
}

/** Every snapshot of the plan, parents first: the base, then each machine's stages, then its controller stages. */
export function cacheEntries(plan: Plan): CacheEntry[] {
  const entries: CacheEntry[] = [{ kind: 'base', key: plan.baseKey }];
  for (const machine of plan.machines) {
    let parentKey = plan.baseKey;
    for (const stage of [...machine.stages, ...plan.controller]) {
      entries.push({ kind: 'stage', machine: machine.name, stage: stage.name, key: stage.key, parentKey });
      parentKey = stage.key;
    }
  }
  return entries;
}

/** The entry an entry is built on (undefined for the base): what its export is incremental against. */
export function parentOf(entries: readonly CacheEntry[], entry: CacheEntry): CacheEntry | undefined {
  if (entry.kind === 'base') return undefined;
  return entries.find((e) => e.key === entry.parentKey && (e.kind === 'base' || e.machine === entry.machine));
}

/** How output names an entry: `base@<key>`, or `<machine>@<stage>`. */
export const entryName = (entry: CacheEntry) => (entry.kind === 'base' ? `base@${entry.key}` : `${entry.machine}@${entry.stage}`);

export function sameEntry(a: CacheEntry, b: CacheEntry): boolean {
  return a.kind === b.kind && a.key === b.key && (a.kind === 'base' || (b.kind === 'stage' && a.machine === b.machine && a.stage === b.stage));
}

/** An object's file, relative to the cache directory; made of checked names only, so a manifest cannot point outside it. */
export function objectFile(object: CacheEntry & { sha256: string }, storage: StorageKind): string {
  const name = object.kind === 'base' ? `base@${object.key}` : `${object.machine}/${object.stage}@${object.key}`;
  return `${OBJECTS_DIR}/${name}-${object.sha256.slice(0, 16)}.${storage === 'btrfs' ? 'btrfs' : 'tar'}`;
}

/**
 * One key for the whole plan, for an actions/cache key: the format, the storage, the base, then a
 * hash of every snapshot's key. Everything up to its last dash is the prefix that finds an older
 * cache of the same base (`restore-keys`), which a pull then uses for what still matches.
 */
export function combinedKey(storage: StorageKind, entries: readonly CacheEntry[]): string {
  const base = entries.find((e) => e.kind === 'base')!.key;
  return `lab-v${CACHE_FORMAT}-${storage}-${base}-${hashOf(entries.map((e) => [entryName(e), e.key]))}`;
}

const key = z.string().regex(/^[0-9a-f]{8,64}$/);
const name = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/);
const digest = { sha256: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative(), identity: z.string().regex(/^[0-9a-f-]{36}$/).optional(), parentIdentity: z.string().regex(/^[0-9a-f-]{36}$/).optional() };
const manifestSchema = z.object({
  format: z.literal(CACHE_FORMAT),
  storage: z.enum(['btrfs', 'copy']),
  base: z.object({ key, image: key, distribution: z.string(), suite: z.string() }),
  lab: z.string(),
  createdAt: z.string(),
  objects: z.array(
    z.discriminatedUnion('kind', [
      z.object({ kind: z.literal('base'), key, ...digest }),
      z.object({ kind: z.literal('stage'), machine: name, stage: name, key, parentKey: key, ...digest }),
    ]),
  ),
});

/**
 * Reads a manifest and checks that this lab can use it: its format and its storage (a btrfs
 * stream cannot become a copy, nor the reverse). Refused with what to do (exit 2) otherwise.
 */
export function parseManifest(text: string, file: string, storage: StorageKind): CacheManifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`${file} is not a lab cache manifest (not JSON)`, 'push the cache again: lab cache push <dir>');
  }
  const format = (value as { format?: unknown } | null)?.format;
  if (format !== CACHE_FORMAT) {
    throw new UsageError(`${file} has cache format ${JSON.stringify(format ?? null)}; this lab reads format ${CACHE_FORMAT}`, 'push the cache again with this version of lab (lab cache push <dir>), or pull with the version that pushed it');
  }
  const parsed = manifestSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UsageError(`${file}: ${issue.path.join('.') || 'manifest'}: ${issue.message}`, 'push the cache again: lab cache push <dir>');
  }
  if (parsed.data.storage !== storage) {
    throw new UsageError(`${file} was pushed from ${parsed.data.storage} storage; this lab uses ${storage} storage`, `pull into a lab with storage.kind ${parsed.data.storage}, or push from one with ${storage}`);
  }
  return parsed.data;
}

/** A manifest's base must be the lab's: otherwise no stage key would match, and the lab is told why. */
export function checkBase(manifest: CacheManifest, base: CacheBase, file: string): void {
  if (manifest.base.key === base.key) return;
  const theirs = `${manifest.base.distribution} ${manifest.base.suite}, base ${manifest.base.key}`;
  const ours = `${base.distribution} ${base.suite}, base ${base.key}`;
  throw new UsageError(
    `${file} holds stages built on another base image (${theirs}) than this lab's (${ours})`,
    manifest.base.image === base.image
      ? 'one of the two ran lab image upgrade: push from a lab on this base, or pull into a lab on the cache\'s'
      : 'the image definitions differ (distribution, suite, mirror, source): push from a lab of this config, or use another cache directory for it',
  );
}
