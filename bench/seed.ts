/**
 * Benchmark of examples/seed-000 and the idempotence check (npm run bench), in one run:
 * - `lab up` of seed-000 with nothing built but the base image (--no-cache: packages come from
 *   the host's package cache when a run before fetched them), once;
 * - `lab up` with every stage cached, machines stopped (median of 3);
 * - the Puppet server's memory (PSS of its machine, lab status), once it served the agents;
 * - `lab up --idempotence` on the default lab, everything cached (median of 3).
 * Results: reports/bench-seed.{json,md}.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../lib/paths.js';
import { benchRun, median, wallMs, writeBenchReport } from './report.js';

const lab = path.join(packageRoot, 'bin', 'lab.js');
const seed = ['--config', path.join(packageRoot, 'examples', 'seed-000', 'lab.config.yaml'), '--name', `bsd${process.pid.toString(36)}`.slice(0, 12)];
const work = mkdtempSync('/var/tmp/lab-bench-');
const defaultConfig = path.join(work, 'lab.config.json');
writeFileSync(defaultConfig, JSON.stringify({ name: `bid${process.pid.toString(36)}`.slice(0, 12) }));
const labArgv = (args: string[]) => [process.execPath, lab, ...args];
const cli = (args: string[]) => benchRun(labArgv(args));

const results: Record<string, unknown> = {};
try {
  const cold = Math.round(await wallMs(() => cli([...seed, 'up', '--no-cache'])));
  const cached: number[] = [];
  for (let i = 0; i < 3; i++) {
    await cli([...seed, 'down']);
    cached.push(Math.round(await wallMs(() => cli([...seed, 'up']))));
  }
  const status = JSON.parse((await cli([...seed, 'status', '--json'])).stdout) as { machines: { name: string; memoryBytes?: number }[] };
  const puppetMiB = Math.round((status.machines.find((m) => m.name === 'puppet')!.memoryBytes ?? 0) / 1048576);
  await cli([...seed, 'destroy']);

  await cli(['--config', defaultConfig, 'up']);
  const idempotence: number[] = [];
  for (let i = 0; i < 3; i++) {
    const report = JSON.parse((await cli(['--config', defaultConfig, 'up', '--idempotence', '--json'])).stdout) as { durationMs: number; idempotent: boolean };
    if (!report.idempotent) throw new Error('the default lab is not idempotent');
    idempotence.push(report.durationMs);
  }
  Object.assign(results, { seedUpNoCacheMs: cold, seedUpCachedStoppedMs: { samples: cached, median: median(cached) }, puppetServerMiB: puppetMiB, idempotenceDefaultLabMs: { samples: idempotence, median: median(idempotence) } });
} finally {
  await benchRun(labArgv([...seed, 'destroy']), { allowFailure: true });
  await benchRun(labArgv(['--config', defaultConfig, 'destroy']), { allowFailure: true });
  rmSync(work, { recursive: true, force: true });
}
const r = results as { seedUpNoCacheMs: number; seedUpCachedStoppedMs: { median: number; samples: number[] }; puppetServerMiB: number; idempotenceDefaultLabMs: { median: number; samples: number[] } };
const markdown = [
  '| measure | figure |',
  '|---|---|',
  `| examples/seed-000: lab up --no-cache (base image present, packages in the host's cache) | ${r.seedUpNoCacheMs} ms |`,
  `| examples/seed-000: lab up, everything cached, machines stopped (median of 3: ${r.seedUpCachedStoppedMs.samples.join(', ')}) | ${r.seedUpCachedStoppedMs.median} ms |`,
  `| the Puppet server's memory (PSS of its machine) | ${r.puppetServerMiB} MiB |`,
  `| lab up --idempotence on the default lab (median of 3: ${r.idempotenceDefaultLabMs.samples.join(', ')}) | ${r.idempotenceDefaultLabMs.median} ms |`,
].join('\n');
writeBenchReport('seed', { ...results }, markdown);
