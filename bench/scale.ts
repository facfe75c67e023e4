/**
 * Benchmark of scale (npm run bench), measured side by side in one run (the CLI's own cost: bench/cli.ts):
 * - `lab up` of N machines (gw with DNS/DHCP plus N-1 machines with the built-in stage only,
 *   base image cached) for N = 10, 25, 50, 3 runs each: wall time (median), machines running and
 *   degraded, memory per machine (PSS, from lab status --json). Target: 50 in at most 30 s, none
 *   degraded, at most 40 MB each.
 * - `lab restore web@haproxy` and `lab restore system` on the default lab, CLI start to running,
 *   median of 10. Targets: 0.8 s and 1.0 s.
 * Results: reports/bench-scale.{json,md}.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../lib/paths.js';
import { benchRun, median, writeBenchReport } from './report.js';

const lab = path.join(packageRoot, 'bin', 'lab.js');
const work = mkdtempSync('/var/tmp/lab-bench-');
const round = (value: number, digits = 2) => Number(value.toFixed(digits));

function scaleConfig(machines: number): string {
  const file = path.join(work, `scale${machines}.yaml`);
  const lines = [`name: bsc${machines}`, 'machines:', '  - { name: gw, address: 10.224.0.254, stages: [dns] }'];
  for (let i = 1; i < machines; i++) lines.push(`  - { name: m${String(i).padStart(2, '0')} }`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

interface UpJson {
  machines: { booted: boolean; failedUnits: string[] }[];
}
interface StatusJson {
  machines: { state: string; memoryBytes?: number }[];
}

const scale: Record<string, unknown>[] = [];
const defaultConfig = path.join(work, 'default.json');
writeFileSync(defaultConfig, JSON.stringify({ name: 'bchdef' }));
const labArgv = (config: string, ...args: string[]) => [process.execPath, lab, '--config', config, ...args];
const cli = (config: string, ...args: string[]) => benchRun(labArgv(config, ...args));
const restores: Record<string, number> = {};
try {
  // The default lab first, on a quiet host; then the big labs.
  await cli(defaultConfig, 'up');

  for (const ref of ['web@haproxy', 'system']) {
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const started = performance.now();
      await cli(defaultConfig, 'restore', ref);
      times.push(performance.now() - started);
      await cli(defaultConfig, 'up'); // back to the last stage, so each restore starts alike
    }
    restores[ref] = round(median(times) / 1000);
  }
  for (const machines of [10, 25, 50]) {
    const config = scaleConfig(machines);
    const walls: number[] = [];
    let degraded = 0;
    let running = 0;
    const memory: number[] = [];
    for (let run = 0; run < 3; run++) {
      const started = performance.now();
      const up = JSON.parse((await cli(config, 'up', '--json')).stdout) as UpJson;
      walls.push((performance.now() - started) / 1000);
      degraded = Math.max(degraded, up.machines.filter((m) => m.failedUnits.length > 0).length);
      const status = JSON.parse((await cli(config, 'status', '--json')).stdout) as StatusJson;
      running = Math.min(run === 0 ? machines : running, status.machines.filter((m) => m.state === 'running').length);
      memory.push(...status.machines.map((m) => m.memoryBytes ?? 0));
      await cli(config, 'destroy');
    }
    const mb = memory.map((b) => b / 1e6);
    scale.push({ machines, wallSecondsMedian: round(median(walls)), wallSeconds: walls.map((w) => round(w)), running, degradedWorstRun: degraded, memoryMbMean: round(mb.reduce((a, b) => a + b, 0) / mb.length, 1), memoryMbMax: round(Math.max(...mb), 1) });
    console.log(JSON.stringify(scale.at(-1)));
  }

} finally {
  for (const config of [...[10, 25, 50].map(scaleConfig), defaultConfig]) await benchRun(labArgv(config, 'destroy'), { allowFailure: true });
  rmSync(work, { recursive: true, force: true });
}

const markdown = [
  '| machines | lab up, median (s) | runs (s) | running | degraded (worst run) | memory per machine, mean / max (MB) |',
  '|---|---|---|---|---|---|',
  ...scale.map((r) => `| ${r.machines} | ${r.wallSecondsMedian} | ${(r.wallSeconds as number[]).join(', ')} | ${r.running} | ${r.degradedWorstRun} | ${r.memoryMbMean} / ${r.memoryMbMax} |`),
  '',
  '| restore, CLI start to running | median of 10 (s) |',
  '|---|---|',
  ...Object.entries(restores).map(([ref, s]) => `| \`lab restore ${ref}\` | ${s} |`),
].join('\n');
writeBenchReport('scale', { scale, restores }, markdown);
