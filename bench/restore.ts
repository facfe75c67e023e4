/**
 * Benchmark of restore and the stage cache (npm run bench), on the default lab in one run:
 * - `lab restore web@haproxy`, CLI start to machine running (target <= 1.5 s);
 * - the root swap alone (new root from the snapshot, renames, old root deleted), btrfs against
 *   copy storage on the same root (target >= 100x), and the btrfs swap with ~300 MB against
 *   ~3 GB in the root, alternated, median of 10 each (target: within 1.2x);
 * - `lab up` with every stage cached (machines stopped, and running) against `lab up --no-cache`
 *   with the base image present (target for fully cached: <= 6 s);
 * - `lab --help` start-up (target <= 200 ms).
 * Results: reports/bench-restore.{json,md}.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openLab } from '../lib/engine/lab.js';
import { packageRoot } from '../lib/paths.js';
import { benchRun, median, wallMs, writeBenchReport } from './report.js';
import { BtrfsStorage } from '../lib/storage/btrfs.js';
import { CopyStorage } from '../lib/storage/copy.js';
import type { Storage } from '../lib/storage/storage.js';

const lab = path.join(packageRoot, 'bin', 'lab.js');
const name = `bench${process.pid.toString(36)}`.slice(0, 12);
const work = mkdtempSync('/var/tmp/lab-bench-');
const config = path.join(work, 'lab.config.json');
writeFileSync(config, JSON.stringify({ name }));
const labArgv = (...args: string[]) => [process.execPath, lab, '--config', config, ...args];
const cli = (...args: string[]) => benchRun(labArgv(...args));

async function samples(count: number, action: () => Promise<unknown>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) times.push(await wallMs(action));
  return times;
}

const round = (ms: number) => Math.round(ms * 10) / 10;

interface SwapTimes {
  /** New root made from the snapshot and renamed into place: what a restoring machine waits for. */
  inPlaceMs: number;
  /** Deleting the old root (restore does it once the machine runs again). */
  removeOldMs: number;
}

/** Replaces `root` by a writable copy of `snapshot` the way restore does: new root first, then the old one goes. */
async function swap(storage: Storage, snapshot: string, root: string): Promise<SwapTimes> {
  const started = performance.now();
  await storage.snapshot(snapshot, `${root}.incoming`, { readonly: false });
  renameSync(root, `${root}.outgoing`);
  renameSync(`${root}.incoming`, root);
  const inPlace = performance.now();
  await storage.remove(`${root}.outgoing`);
  return { inPlaceMs: inPlace - started, removeOldMs: performance.now() - inPlace };
}

const total = (t: SwapTimes) => t.inPlaceMs + t.removeOldMs;
const medianOf = (times: SwapTimes[], pick: (t: SwapTimes) => number) => median(times.map(pick));

const results: Record<string, unknown> = {};
try {
  await cli('up');
  const opened = await openLab({ file: config });
  const pool = new BtrfsStorage(opened.dirs.pool, undefined); // the lab's pool is mounted: work in it directly
  const webRoot = opened.dirs.machineRoot('web');

  const restoreMs = await samples(5, () => cli('restore', 'web@haproxy'));
  results.restore = { samplesMs: restoreMs.map(round), medianMs: round(median(restoreMs)), targetMs: 1500 };

  // The same ~300 MB root (web's) on btrfs and, copied out, on the host's own filesystem for copy mode.
  const benchDir = path.join(opened.dirs.pool, 'bench');
  const small = path.join(benchDir, 'small');
  await pool.snapshot(webRoot, `${small}.snap`, { readonly: true });
  await pool.snapshot(`${small}.snap`, small, { readonly: false });
  const copyDir = path.join(work, 'copy');
  const copy = new CopyStorage(copyDir, 'benchmark');
  mkdirSync(copyDir, { recursive: true });
  await copy.snapshot(webRoot, path.join(copyDir, 'root.snap'), { readonly: true });
  await copy.snapshot(path.join(copyDir, 'root.snap'), path.join(copyDir, 'root'), { readonly: false });
  const copySwap: SwapTimes[] = [];
  for (let i = 0; i < 3; i++) copySwap.push(await swap(copy, path.join(copyDir, 'root.snap'), path.join(copyDir, 'root')));
  // The same with the page cache dropped first, as after a reboot or under memory pressure (a
  // global but harmless act: caches only). btrfs does not read the root's data at all.
  const copyColdSwap: SwapTimes[] = [];
  for (let i = 0; i < 3; i++) {
    await benchRun(['sync']);
    writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    copyColdSwap.push(await swap(copy, path.join(copyDir, 'root.snap'), path.join(copyDir, 'root')));
  }
  const rootBytes = Number((await benchRun(['du', '-sb', `${small}.snap`])).stdout.split('\t')[0]);

  // The same root with ~2.7 GB more data in it.
  const large = path.join(benchDir, 'large');
  await pool.snapshot(webRoot, large, { readonly: false });
  await benchRun(['dd', 'if=/dev/urandom', `of=${path.join(large, 'var', 'bench.data')}`, 'bs=1M', 'count=2700', 'status=none']);
  await benchRun(['sync']);
  await pool.snapshot(large, `${large}.snap`, { readonly: true });
  // Alternated, so that both sizes meet the same background work (btrfs deletes subvolumes lazily).
  const btrfsSmall: SwapTimes[] = [];
  const btrfsLarge: SwapTimes[] = [];
  for (let i = 0; i < 10; i++) {
    btrfsSmall.push(await swap(pool, `${small}.snap`, small));
    btrfsLarge.push(await swap(pool, `${large}.snap`, large));
  }
  const largeBytes = Number((await benchRun(['du', '-sb', `${large}.snap`])).stdout.split('\t')[0]);
  for (const target of [small, `${small}.snap`, large, `${large}.snap`]) await pool.remove(target);
  rmSync(benchDir, { recursive: true, force: true });

  const inPlace = (t: SwapTimes) => t.inPlaceMs;
  const removeOld = (t: SwapTimes) => t.removeOldMs;
  results.rootSwap = {
    smallRootMB: Math.round(rootBytes / 1e6),
    largeRootMB: Math.round(largeBytes / 1e6),
    btrfs: { inPlaceMs: round(medianOf(btrfsSmall, inPlace)), removeOldMs: round(medianOf(btrfsSmall, removeOld)), totalMs: round(medianOf(btrfsSmall, total)) },
    btrfsLarge: { inPlaceMs: round(medianOf(btrfsLarge, inPlace)), removeOldMs: round(medianOf(btrfsLarge, removeOld)), totalMs: round(medianOf(btrfsLarge, total)) },
    copy: { inPlaceMs: round(medianOf(copySwap, inPlace)), removeOldMs: round(medianOf(copySwap, removeOld)), totalMs: round(medianOf(copySwap, total)) },
    copyCold: { inPlaceMs: round(medianOf(copyColdSwap, inPlace)), removeOldMs: round(medianOf(copyColdSwap, removeOld)), totalMs: round(medianOf(copyColdSwap, total)) },
    copyOverBtrfsInPlace: round(medianOf(copySwap, inPlace) / medianOf(btrfsSmall, inPlace)),
    copyOverBtrfsTotal: round(medianOf(copySwap, total) / medianOf(btrfsSmall, total)),
    copyColdOverBtrfsTotal: round(medianOf(copyColdSwap, total) / medianOf(btrfsSmall, total)),
    largeOverSmallTotal: Math.round((medianOf(btrfsLarge, total) / medianOf(btrfsSmall, total)) * 100) / 100,
    targets: { copyOverBtrfs: '>= 100', largeOverSmall: '<= 1.2' },
  };

  const noCache = await wallMs(() => cli('up', '--no-cache'));
  await cli('down');
  const cachedStopped = await wallMs(() => cli('up'));
  const cachedRunning = await samples(3, () => cli('up'));
  results.up = {
    noCacheBaseImagePresentMs: round(noCache),
    allCachedMachinesStoppedMs: round(cachedStopped),
    allCachedMachinesRunningMs: round(median(cachedRunning)),
    coldOverCached: round(noCache / cachedStopped),
    targetAllCachedMs: 6000,
  };

  const help = await samples(20, () => benchRun([process.execPath, lab, '--help']));
  results.helpStartup = { medianMs: round(median(help)), targetMs: 200 };
} finally {
  await benchRun(labArgv('destroy'), { allowFailure: true });
  rmSync(work, { recursive: true, force: true });
}

const r = results as {
  restore: { medianMs: number };
  rootSwap: {
    smallRootMB: number;
    largeRootMB: number;
    btrfs: SwapTimes & { totalMs: number };
    btrfsLarge: SwapTimes & { totalMs: number };
    copy: SwapTimes & { totalMs: number };
    copyCold: SwapTimes & { totalMs: number };
    copyOverBtrfsInPlace: number;
    copyOverBtrfsTotal: number;
    copyColdOverBtrfsTotal: number;
    largeOverSmallTotal: number;
  };
  up: { noCacheBaseImagePresentMs: number; allCachedMachinesStoppedMs: number; allCachedMachinesRunningMs: number; coldOverCached: number };
  helpStartup: { medianMs: number };
};
const markdown = [
  '| measure | figure | target |',
  '|---|---|---|',
  `| lab restore web@haproxy (CLI start to running, median of 5) | ${r.restore.medianMs} ms | <= 1500 ms |`,
  `| root swap, btrfs, ${r.rootSwap.smallRootMB} MB root: new root in place / old root deleted / total | ${r.rootSwap.btrfs.inPlaceMs} / ${r.rootSwap.btrfs.removeOldMs} / ${r.rootSwap.btrfs.totalMs} ms | |`,
  `| root swap, copy, same root, page cache warm: in place / deleted / total | ${r.rootSwap.copy.inPlaceMs} / ${r.rootSwap.copy.removeOldMs} / ${r.rootSwap.copy.totalMs} ms | |`,
  `| root swap, copy, same root, page cache dropped: in place / deleted / total | ${r.rootSwap.copyCold.inPlaceMs} / ${r.rootSwap.copyCold.removeOldMs} / ${r.rootSwap.copyCold.totalMs} ms | |`,
  `| copy / btrfs, new root in place, warm | ${r.rootSwap.copyOverBtrfsInPlace}x | >= 100x |`,
  `| copy / btrfs, total, warm | ${r.rootSwap.copyOverBtrfsTotal}x | >= 100x |`,
  `| copy / btrfs, total, page cache dropped | ${r.rootSwap.copyColdOverBtrfsTotal}x | >= 100x |`,
  `| root swap, btrfs, ${r.rootSwap.largeRootMB} MB root: in place / deleted / total | ${r.rootSwap.btrfsLarge.inPlaceMs} / ${r.rootSwap.btrfsLarge.removeOldMs} / ${r.rootSwap.btrfsLarge.totalMs} ms | |`,
  `| btrfs total, ${r.rootSwap.largeRootMB} MB / ${r.rootSwap.smallRootMB} MB | ${r.rootSwap.largeOverSmallTotal}x | <= 1.2x |`,
  `| lab up --no-cache (base image present) | ${r.up.noCacheBaseImagePresentMs} ms | |`,
  `| lab up, all cached, machines stopped | ${r.up.allCachedMachinesStoppedMs} ms | <= 6000 ms |`,
  `| lab up, all cached, machines running | ${r.up.allCachedMachinesRunningMs} ms | |`,
  `| no-cache / cached | ${r.up.coldOverCached}x | |`,
  `| lab --help start-up (median of 20) | ${r.helpStartup.medianMs} ms | <= 200 ms |`,
].join('\n');
writeBenchReport('restore', { ...results }, markdown);
