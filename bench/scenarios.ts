/**
 * Benchmark of the default scenario suite on a warm lab (npm run bench): `lab test` wall time,
 * read-only scenarios in parallel (the default) against `--serial`, median of 3 each
 * (target <= 15 s). Results: reports/bench-scenarios.{json,md}.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../lib/paths.js';
import { benchRun, median, writeBenchReport } from './report.js';

const lab = path.join(packageRoot, 'bin', 'lab.js');
const name = `bench${process.pid.toString(36)}`.slice(0, 12);
const work = mkdtempSync('/var/tmp/lab-bench-');
const labArgv = (...args: string[]) => [process.execPath, lab, '--name', name, ...args];
const cli = (...args: string[]) => benchRun(labArgv(...args));

interface TestReport {
  passed: number;
  failed: number;
}

async function timedTest(...flags: string[]): Promise<{ wallMs: number; passed: number }> {
  const started = performance.now();
  const output = await cli('test', '--json', '--reports', path.join(work, 'reports'), ...flags);
  const report = JSON.parse(output.stdout) as TestReport;
  if (report.failed > 0) throw new Error(`the suite failed: ${report.failed} failures`);
  return { wallMs: performance.now() - started, passed: report.passed };
}

const results: Record<string, { runsMs: number[]; medianMs: number; tests: number }> = {};
try {
  await cli('up'); // warm: everything built and running
  await timedTest(); // and the scenario files transformed once
  for (const [mode, flags] of [['parallel', []], ['serial', ['--serial']]] as const) {
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(await timedTest(...flags));
    results[mode] = { runsMs: runs.map((r) => Math.round(r.wallMs)), medianMs: Math.round(median(runs.map((r) => r.wallMs))), tests: runs[0].passed };
  }
} finally {
  await benchRun(labArgv('destroy'), { allowFailure: true });
  rmSync(work, { recursive: true, force: true });
}

const markdown = [
  '| mode | lab test wall time (median of 3) | tests | target |',
  '|---|---|---|---|',
  ...Object.entries(results).map(([mode, r]) => `| ${mode} | ${(r.medianMs / 1000).toFixed(2)} s | ${r.tests} | <= 15 s |`),
  `| serial / parallel | ${(results.serial.medianMs / results.parallel.medianMs).toFixed(2)}x | | |`,
].join('\n');
writeBenchReport('scenarios', { ...results }, markdown);
