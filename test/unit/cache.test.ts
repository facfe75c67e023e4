/**
 * The stage cache that travels (lab cache key/push/pull): the manifest's checks (pure), then push
 * and pull between two fake labs standing for two runners (./fakes.ts: their own state directories,
 * snapshots as plain directories, exports as JSON).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CACHE_FORMAT, cacheEntries, type CacheManifest, checkBase, combinedKey, objectFile, parseManifest } from '../../lib/cache/manifest.js';
import { cacheKey, pullCache, pushCache } from '../../lib/engine/cache.js';
import { interruptedWork } from '../../lib/engine/recover.js';
import { up } from '../../lib/engine/up.js';
import { EXIT, LabError } from '../../lib/errors.js';
import { planLab } from '../../lib/plan/plan.js';
import { type FakeLab, fakeLab } from './fakes.js';

vi.mock('../../lib/host/limits.js', async (importOriginal) => ({ ...(await importOriginal<typeof import('../../lib/host/limits.js')>()), raiseLimits: () => [] }));

const spec = (machine: string, name: string) => ({ machine, name, packages: [], definitionHash: `${machine}-${name}` });
const plan = (definition = 'proxy') =>
  planLab({
    machines: [
      { name: 'gw', dependsOn: [], stages: [spec('gw', 'system'), spec('gw', 'dns')] },
      { name: 'web', dependsOn: ['gw'], stages: [spec('web', 'system'), { ...spec('web', 'proxy'), definitionHash: definition }] },
    ],
    baseKey: 'ba5e0000ba5e0000',
    hasSnapshot: () => false,
    controller: [{ name: 'play', definitionHash: 'play' }],
  });

async function refusal(body: () => unknown): Promise<LabError> {
  try {
    await body();
  } catch (error) {
    if (error instanceof LabError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('the plan as cache entries', () => {
  it('are the base, then each machine\'s stages and the controller stages, each with the key of the one it is built on', () => {
    const p = plan();
    const entries = cacheEntries(p);
    const key = (machine: string, stage: string) => p.machines.find((m) => m.name === machine)!.stages.find((s) => s.name === stage)?.key ?? p.controller[0]!.key;
    expect(entries.map((e) => (e.kind === 'base' ? 'base' : `${e.machine}@${e.stage}<-${e.parentKey === p.baseKey ? 'base' : e.parentKey === key(e.machine, 'system') ? 'system' : e.parentKey === key(e.machine, e.machine === 'gw' ? 'dns' : 'proxy') ? 'last' : '?'}`))).toEqual([
      'base',
      'gw@system<-base',
      'gw@dns<-system',
      'gw@play<-last',
      'web@system<-base',
      'web@proxy<-system',
      'web@play<-last',
    ]);
  });

  it('have one combined key, the same for the same plan, another when any stage changes; its prefix finds caches of the same base', () => {
    const key = combinedKey('btrfs', cacheEntries(plan()));
    expect(key).toMatch(new RegExp(`^lab-v${CACHE_FORMAT}-btrfs-ba5e0000ba5e0000-[0-9a-f]{16}$`));
    expect(combinedKey('btrfs', cacheEntries(plan()))).toBe(key);
    const changed = combinedKey('btrfs', cacheEntries(plan('proxy, edited')));
    expect(changed).not.toBe(key);
    expect(changed.slice(0, changed.lastIndexOf('-'))).toBe(key.slice(0, key.lastIndexOf('-')));
    expect(combinedKey('copy', cacheEntries(plan()))).not.toBe(key);
  });
});

describe('a cache manifest', () => {
  const base = { key: 'ba5e0000ba5e0000', image: 'ba5e0000ba5e0000', distribution: 'debian', suite: 'bookworm' };
  const object = { kind: 'stage' as const, machine: 'gw', stage: 'dns', key: '0123456789abcdef', parentKey: 'fedcba9876543210', sha256: 'a'.repeat(64), size: 10 };
  const manifest = (overrides: Record<string, unknown> = {}) => JSON.stringify({ format: CACHE_FORMAT, storage: 'btrfs', base, lab: 'lab', createdAt: '2025-01-01T00:00:00Z', objects: [object], ...overrides });

  it('is read when it is of this format and storage', () => {
    expect(parseManifest(manifest(), 'm.json', 'btrfs').objects).toEqual([object]);
  });

  it('of another format, or not JSON, is refused with what to do (exit 2)', async () => {
    const other = await refusal(() => parseManifest(manifest({ format: CACHE_FORMAT + 1 }), 'm.json', 'btrfs'));
    expect(other.exitCode).toBe(EXIT.USAGE);
    expect(other.message).toBe(`m.json has cache format ${CACHE_FORMAT + 1}; this lab reads format ${CACHE_FORMAT}`);
    expect(other.hint).toMatch(/lab cache push/);
    expect((await refusal(() => parseManifest('{"format": 1, "stor', 'm.json', 'btrfs'))).message).toMatch(/not JSON/);
  });

  it('of another storage is refused: a btrfs stream is no tarball', async () => {
    const error = await refusal(() => parseManifest(manifest(), 'm.json', 'copy'));
    expect([error.exitCode, error.message]).toEqual([EXIT.USAGE, 'm.json was pushed from btrfs storage; this lab uses copy storage']);
  });

  it('naming files outside the cache is refused: object files are made of checked names', async () => {
    const error = await refusal(() => parseManifest(manifest({ objects: [{ ...object, machine: '../../etc' }] }), 'm.json', 'btrfs'));
    expect([error.exitCode, error.message]).toEqual([EXIT.USAGE, expect.stringMatching(/^m\.json: objects\.0\.machine: /)]);
    expect(objectFile(object, 'btrfs')).toBe('objects/gw/dns@0123456789abcdef-aaaaaaaaaaaaaaaa.btrfs');
    expect(objectFile({ kind: 'base', key: base.key, sha256: 'b'.repeat(64) }, 'copy')).toBe('objects/base@ba5e0000ba5e0000-bbbbbbbbbbbbbbbb.tar');
  });

  it('of another base image is refused, saying whether an upgrade or the image definition differs', async () => {
    const parsed = parseManifest(manifest(), 'm.json', 'btrfs');
    expect(() => checkBase(parsed, base, 'm.json')).not.toThrow();
    const upgraded = await refusal(() => checkBase(parsed, { ...base, key: '1111111111111111' }, 'm.json'));
    expect([upgraded.exitCode, upgraded.message]).toEqual([EXIT.USAGE, 'm.json holds stages built on another base image (debian bookworm, base ba5e0000ba5e0000) than this lab\'s (debian bookworm, base 1111111111111111)']);
    expect(upgraded.hint).toMatch(/lab image upgrade/);
    const other = await refusal(() => checkBase(parsed, { key: '2222222222222222', image: '2222222222222222', distribution: 'ubuntu', suite: 'noble' }, 'm.json'));
    expect(other.hint).toMatch(/image definitions differ/);
  });
});

describe('lab cache push and pull, between two labs', () => {
  let first: FakeLab;
  let second: FakeLab;
  let cache: string;
  const built = (fake: FakeLab, mark: number) => fake.events.of('step', mark);
  const manifestOf = () => JSON.parse(readFileSync(path.join(cache, 'manifest.json'), 'utf8')) as CacheManifest;

  beforeEach(async () => {
    vi.spyOn(process, 'getuid').mockReturnValue(0);
    [first, second] = [await fakeLab(), await fakeLab()];
    cache = mkdtempSync(path.join(tmpdir(), 'lab-cache-'));
    await up(first.lab);
  });

  afterEach(async () => {
    vi.restoreAllMocks();
    await first.cleanup();
    await second.cleanup();
    rmSync(cache, { recursive: true, force: true });
  });

  it('push exports every snapshot of the plan, the manifest last; the second lab pulls them and its lab up builds nothing', async () => {
    const pushed = await pushCache(first.lab, cache);
    expect(pushed.objects.map((o) => o.action)).toEqual(Array(9).fill('written')); // the base and 8 stages
    const manifest = manifestOf();
    expect(manifest).toMatchObject({ format: CACHE_FORMAT, storage: 'copy', base: { key: 'ba5e0000', image: 'ba5e0000' } });
    for (const object of manifest.objects) expect(existsSync(path.join(cache, objectFile(object, 'copy'))), objectFile(object, 'copy')).toBe(true);
    expect(cacheKey(second.lab).key).toBe(cacheKey(first.lab).key);

    const pulled = await pullCache(second.lab, cache);
    expect(pulled).toMatchObject({ found: true, present: 0 });
    expect(pulled.objects.map((o) => `${o.name}:${o.action}`)).toEqual(cacheKey(first.lab).snapshots.map((s) => `${s.name}:imported`));
    const mark = second.events.mark();
    const report = await up(second.lab);
    expect(built(second, mark)).toEqual([]);
    expect(report.baseImage).toBe('pool');
    expect(second.marks(second.lab.dirs.machineRoot('web')).proxy).toBe(first.marks(first.lab.dirs.machineRoot('web')).proxy);

    // Nothing more to pull; a changed stage is not in the cache, and lab up builds it and what follows only.
    expect((await pullCache(second.lab, cache)).objects).toEqual([]);
    await second.writeStage('web-silicon', 'nginx', '#!/bin/sh\necho nginx, edited\n');
    expect((await pullCache(second.lab, cache)).objects.map((o) => `${o.name}:${o.action}`)).toEqual(['web-silicon@nginx:not in the cache', 'web-silicon@site:not in the cache']);
    const edited = second.events.mark();
    await up(second.lab);
    expect(built(second, edited)).toEqual(['web-silicon@nginx', 'web-silicon@site']);
  });

  it('pull refuses a truncated or altered object, never uses it, and lab up builds that stage and those after it', async () => {
    await pushCache(first.lab, cache);
    const objects = manifestOf().objects;
    const file = (machine: string, stage: string) => path.join(cache, objectFile(objects.find((o) => o.kind === 'stage' && o.machine === machine && o.stage === stage)!, 'copy'));
    writeFileSync(file('web', 'haproxy'), readFileSync(file('web', 'haproxy')).subarray(0, -10)); // truncated: its size says so
    const altered = readFileSync(file('gw', 'dns'));
    const middle = Math.floor(altered.length / 2);
    altered[middle] = altered[middle] === 0x41 ? 0x42 : 0x41; // one byte: same size, another sha256
    writeFileSync(file('gw', 'dns'), altered);

    const pulled = await pullCache(second.lab, cache);
    const refused = pulled.objects.filter((o) => o.action === 'refused').map((o) => [o.name, o.reason]);
    expect(refused).toEqual([
      ['gw@dns', expect.stringMatching(/is altered \(its sha256 is not the manifest's\)$/)],
      ['web@haproxy', expect.stringMatching(/is truncated or altered \(\d+ bytes, the manifest says \d+\)$/)],
    ]);
    expect(existsSync(second.lab.dirs.snapshot('gw', 'dns', second.keyOf('gw', 'dns')))).toBe(false);
    const mark = second.events.mark();
    await up(second.lab);
    expect(built(second, mark).sort()).toEqual(['gw@dns', 'web@haproxy', 'web@proxy']);
  });

  it('pull refuses a cache of another base before importing anything (exit 2); with no cache there, it says lab up builds everything', async () => {
    await pushCache(first.lab, cache);
    const manifest = manifestOf();
    writeFileSync(path.join(cache, 'manifest.json'), JSON.stringify({ ...manifest, base: { ...manifest.base, key: 'ffffffffffffffff' } }));
    const error = await refusal(() => pullCache(second.lab, cache));
    expect(error.exitCode).toBe(EXIT.USAGE);
    expect(error.message).toMatch(/holds stages built on another base image/);
    expect(existsSync(second.lab.dirs.snapshotsOf('gw'))).toBe(false);
    const empty = mkdtempSync(path.join(tmpdir(), 'lab-cache-'));
    expect(await pullCache(second.lab, empty)).toMatchObject({ found: false, objects: [] });
    rmSync(empty, { recursive: true });
  });

  it('an interrupted push leaves the previous cache whole; the next push removes what it left and keeps what did not change', async () => {
    await pushCache(first.lab, cache);
    const before = readFileSync(path.join(cache, 'manifest.json'), 'utf8');
    await first.writeStage('web', 'proxy', '#!/bin/sh\necho proxy, edited\n');
    await up(first.lab);
    const exportSnapshot = first.storage.exportSnapshot.bind(first.storage);
    vi.spyOn(first.storage, 'exportSnapshot').mockImplementation(async (snapshot, file, parent) => {
      writeFileSync(`${file}.partial`, 'half a stream'); // what a kill leaves
      if (snapshot.includes('proxy@')) throw new Error('killed');
      return exportSnapshot(snapshot, file, parent);
    });
    await expect(pushCache(first.lab, cache)).rejects.toThrow('killed');
    expect(readFileSync(path.join(cache, 'manifest.json'), 'utf8')).toBe(before);
    const objects = JSON.parse(before) as CacheManifest;
    for (const object of objects.objects) expect(existsSync(path.join(cache, objectFile(object, 'copy')))).toBe(true);
    expect(readdirSync(path.join(cache, 'objects'), { recursive: true }).some((f) => String(f).endsWith('.partial'))).toBe(true);

    vi.mocked(first.storage.exportSnapshot).mockImplementation(exportSnapshot);
    const pushed = await pushCache(first.lab, cache);
    expect(pushed.objects.filter((o) => o.action === 'written').map((o) => o.name)).toEqual(['web@proxy']);
    expect(readdirSync(path.join(cache, 'objects'), { recursive: true }).some((f) => String(f).endsWith('.partial'))).toBe(false);
    // The earlier proxy's object is gone with the manifest that named it.
    expect(readdirSync(path.join(cache, 'objects', 'web')).filter((f) => f.startsWith('proxy@'))).toHaveLength(1);
  });

  it('an interrupted pull leaves complete snapshots only, and its staging is repaired by the next command', async () => {
    await pushCache(first.lab, cache);
    const importSnapshot = second.storage.importSnapshot.bind(second.storage);
    vi.spyOn(second.storage, 'importSnapshot').mockImplementation(async (file, target) => {
      if (target.includes('haproxy@')) throw new Error('killed');
      return importSnapshot(file, target);
    });
    await expect(pullCache(second.lab, cache)).rejects.toThrow('killed');
    expect(existsSync(second.lab.dirs.snapshot('web', 'haproxy', second.keyOf('web', 'haproxy')))).toBe(false);
    expect(existsSync(second.lab.dirs.snapshot('web', 'system', second.keyOf('web', 'system')))).toBe(true);
    expect(existsSync(second.lab.dirs.cacheStaging)).toBe(false);
    mkdirSync(path.join(second.lab.dirs.cacheStaging, 'receive-1'), { recursive: true }); // what a kill -9 leaves
    expect(interruptedWork(second.lab).map((w) => w.what)).toEqual([`${second.lab.dirs.cacheStaging}: what a cache pull was receiving`]);
  });

  it('with incremental exports, a pool whose own parent is another snapshot gets the cache\'s one for the time of the pull', async () => {
    first.storage.identities = second.storage.identities = true;
    await pushCache(first.lab, cache);
    expect(first.events.of('export').filter((e) => e.startsWith('snapshots/gw/'))).toEqual([
      `snapshots/gw/system@${first.keyOf('gw', 'system')} on images/base@ba5e0000`,
      `snapshots/gw/dns@${first.keyOf('gw', 'dns')} on snapshots/gw/system@${first.keyOf('gw', 'system')}`,
    ]);
    await up(second.lab); // a base of its own, and every stage
    await second.storage.remove(second.lab.dirs.snapshotsOf('gw'));
    const mark = second.events.mark();
    const pulled = await pullCache(second.lab, cache);
    expect(pulled.objects.map((o) => `${o.name}:${o.action}`)).toEqual(['gw@system:imported', 'gw@dns:imported']);
    expect(second.events.of('import', mark).map((e) => e.split(' -> ')[1])).toEqual([
      'cache-pull.partial/parent-0', // the cache's base, which the system stage's export is built on
      `snapshots/gw/system@${second.keyOf('gw', 'system')}`,
      `snapshots/gw/dns@${second.keyOf('gw', 'dns')}`,
    ]);
    expect(existsSync(second.lab.dirs.cacheStaging)).toBe(false);
  });
});
