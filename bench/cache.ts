/**
 * Benchmark of the stage cache between runners (npm run bench): `lab up` on a fresh state
 * directory (a lab name of its own: its own pool) with the stage cache pulled, against the same
 * `lab up` without it, for the default lab and examples/sadm. Runs alternate, 3 of each, medians.
 * Both sides share the host's cacheDir (the base image tarball and the package proxy's cache), as
 * a runner restoring its Actions cache would: the difference is the stages alone. The cache is
 * pushed once by a builder lab first; the steps a pulled lab still builds are named (a stage whose
 * inputs hold the lab's name is built again by a lab of another name). Results: reports/bench-cache.{json,md}.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../lib/paths.js';
import { benchRun, median, writeBenchReport } from './report.js';

const lab = path.join(packageRoot, 'bin', 'lab.js');
const work = mkdtempSync('/var/tmp/lab-bench-cache-');
const runs = 3;
const tag = process.pid.toString(36).slice(-4);
const labs = [
  { title: 'default lab', short: 'd', config: [] as string[] },
  { title: 'examples/sadm', short: 's', config: ['--config', path.join(packageRoot, 'examples', 'sadm', 'lab.config.yaml')] },
];

interface UpJson {
  machines: { name: string; stages: { name: string; action: string }[] }[];
}
const builtSteps = (report: UpJson) => report.machines.flatMap((m) => m.stages.filter((s) => s.action === 'build').map((s) => `${m.name}@${s.name}`));

async function timed<T>(action: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await action();
  return { ms: performance.now() - started, value };
}

const rows: Record<string, unknown>[] = [];
/** Every lab a run brought up, by name: destroyed at the end whatever happened. */
const made = new Map<string, string[]>();
try {
  for (const { title, short, config } of labs) {
    const cli = (name: string, ...args: string[]) => benchRun([process.execPath, lab, ...config, '--name', name, ...args]);
    const up = async (name: string) => {
      made.set(name, [...config, '--name', name]);
      return builtSteps(JSON.parse((await cli(name, 'up', '--json')).stdout) as UpJson);
    };
    const cache = path.join(work, short);
    const builder = `bc${short}b${tag}`;
    await up(builder);
    await cli(builder, 'cache', 'push', cache);
    await cli(builder, 'destroy');

    const without: { ms: number; built: string[] }[] = [];
    const withCache: { pullMs: number; upMs: number; built: string[] }[] = [];
    for (let i = 0; i < runs; i++) {
      const cold = `bc${short}n${i}${tag}`;
      const noCache = await timed(() => up(cold));
      without.push({ ms: noCache.ms, built: noCache.value });
      await cli(cold, 'destroy');

      const warm = `bc${short}c${i}${tag}`;
      made.set(warm, [...config, '--name', warm]);
      const pull = await timed(() => cli(warm, 'cache', 'pull', cache));
      const cached = await timed(() => up(warm));
      withCache.push({ pullMs: pull.ms, upMs: cached.ms, built: cached.value });
      await cli(warm, 'destroy');
    }
    rows.push({
      lab: title,
      withoutCacheS: median(without.map((r) => r.ms)) / 1000,
      builtWithout: median(without.map((r) => r.built.length)),
      pullS: median(withCache.map((r) => r.pullMs)) / 1000,
      upAfterPullS: median(withCache.map((r) => r.upMs)) / 1000,
      withCacheS: median(withCache.map((r) => r.pullMs + r.upMs)) / 1000,
      // What a pull cannot bring: a stage whose key has the lab's name in it (the default lab's web-silicon@site).
      builtWith: [...new Set(withCache.flatMap((r) => r.built))],
      runs: { without, withCache },
    });
  }
} finally {
  // Whatever a failed run left: destroy is a no-op on a lab already gone.
  for (const argv of made.values()) await benchRun([process.execPath, lab, ...argv, 'destroy'], { allowFailure: true });
  rmSync(work, { recursive: true, force: true });
}

const s = (value: unknown) => (value as number).toFixed(1);
const table = [
  `| lab | \`lab up\` without the cache | pull | \`lab up\` after the pull | with the cache (pull + up) | steps built without / with | speed-up |`,
  '|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.lab} | ${s(r.withoutCacheS)} s | ${s(r.pullS)} s | ${s(r.upAfterPullS)} s | ${s(r.withCacheS)} s | ${r.builtWithout} / ${(r.builtWith as string[]).length} ${(r.builtWith as string[]).length ? `(${(r.builtWith as string[]).join(', ')})` : ''} | ${((r.withoutCacheS as number) / (r.withCacheS as number)).toFixed(1)}x |`),
].join('\n');
writeBenchReport('cache', { runs, rows }, `# The stage cache between runners (medians of ${runs}, fresh state directory each run)\n\n${table}`);
