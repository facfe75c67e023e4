/**
 * Benchmark of `lab up` (npm run bench): the default lab, cold from nothing (empty caches:
 * debootstrap and every package download), with the base image already built (packages
 * downloaded again), with base image and packages cached, then every stage cached with the
 * machines stopped; and each machine's boot time. Results go to reports/bench-up.{json,md}.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { defaultLab } from '../lib/config/default.js';
import { packageRoot } from '../lib/paths.js';
import { benchRun, writeBenchReport } from './report.js';

interface UpReport {
  baseImage: string;
  durationMs: number;
  machines: { name: string; booted: boolean; bootMs?: number }[];
}

const lab = path.join(packageRoot, 'bin', 'lab.js');
const name = `bench${process.pid.toString(36)}`.slice(0, 12);
const work = mkdtempSync('/var/tmp/lab-bench-');
const config = path.join(work, 'lab.config.json');
// Its own cache directory, so that "cold" really starts from nothing.
writeFileSync(config, JSON.stringify({ ...defaultLab, name, cacheDir: path.join(work, 'cache') }));
const labArgv = (...args: string[]) => [process.execPath, lab, '--config', config, ...args];

async function timedUp(): Promise<{ wallMs: number; report: UpReport }> {
  const started = performance.now();
  const output = await benchRun(labArgv('up', '--json'));
  return { wallMs: performance.now() - started, report: JSON.parse(output.stdout) as UpReport };
}

const results: Record<string, { wallMs: number; report: UpReport }> = {};
try {
  results.cold = await timedUp();
  await benchRun(labArgv('destroy'));
  rmSync(path.join(work, 'cache', 'packages'), { recursive: true, force: true }); // packages are downloaded again
  results.baseImageBuilt = await timedUp();
  await benchRun(labArgv('destroy'));
  results.baseImageAndPackagesCached = await timedUp();
  await benchRun(labArgv('down'));
  results.allCachedMachinesStopped = await timedUp();
} finally {
  await benchRun(labArgv('destroy'), { allowFailure: true });
  rmSync(work, { recursive: true, force: true });
}

const seconds = (ms: number) => (ms / 1000).toFixed(2);
const rows = Object.entries(results).map(([scenario, { wallMs, report }]) => ({
  scenario,
  wallSeconds: Number(seconds(wallMs)),
  baseImage: report.baseImage,
  bootSeconds: Object.fromEntries(report.machines.map((m) => [m.name, m.bootMs === undefined ? null : Number(seconds(m.bootMs))])),
}));
const machines = defaultLab.machines.map((m) => m.name);
const markdown = [
  '| scenario | wall time (s) | base image | ' + machines.map((m) => `boot ${m} (s)`).join(' | ') + ' |',
  '|---|---|---|' + machines.map(() => '---').join('|') + '|',
  ...rows.map((r) => `| ${r.scenario} | ${r.wallSeconds} | ${r.baseImage} | ${machines.map((m) => r.bootSeconds[m] ?? '-').join(' | ')} |`),
].join('\n');
writeBenchReport('up', { rows }, markdown);
