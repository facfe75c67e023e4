/**
 * Benchmark of the CLI's own cost (node dist/bench/cli.js), on the default lab, side by side in one run:
 * - `node -e 0` (the baseline), `lab exec gw -- true` and `lab status` (hyperfine, medians). Targets: 1.5x.
 * - lab's own JavaScript before its first external command, per verb (bench/first-command.ts), median of 10. Target: 25 ms.
 * - `lab restore web@haproxy`, CLI start to running, median of 10.
 * Results: reports/bench-cli.{json,md}. Needs hyperfine (apt-get install hyperfine).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../lib/paths.js';
import { benchRun, median, wallMs, writeBenchReport } from './report.js';

const lab = path.join(packageRoot, 'bin', 'lab.js');
const preload = path.join(packageRoot, 'dist', 'bench', 'first-command.js');
const work = mkdtempSync('/var/tmp/lab-bench-');
const config = path.join(work, 'lab.config.json');
writeFileSync(config, JSON.stringify({ name: `bcli${process.pid.toString(36)}`.slice(0, 12) }));
const labArgv = (...args: string[]) => [process.execPath, lab, '--config', config, ...args];
const round = (value: number, digits = 1) => Number(value.toFixed(digits));

/** Milliseconds of lab's JavaScript before its first command, as the preload reports it. */
async function firstCommandMs(args: string[]): Promise<number | undefined> {
  const { stderr } = await benchRun([process.execPath, '--import', preload, lab, '--config', config, ...args], { allowFailure: true });
  const found = /lab-first-command-ms ([\d.]+)/.exec(stderr);
  return found ? Number(found[1]) : undefined;
}

const VERBS: Record<string, string[]> = { exec: ['exec', 'gw', '--', 'true'], status: ['status'], restore: ['restore', 'web@haproxy'] };
let cli: { command: string; medianMs: number; ratio: number }[] = [];
const firstCommand: Record<string, number | null> = {};
let restore: { medianMs: number; samplesMs: number[] } | undefined;
try {
  await benchRun(labArgv('up'));
  const exported = path.join(work, 'hyperfine.json');
  await benchRun(['hyperfine', '-N', '-w', '3', '-r', '30', '--export-json', exported, 'node -e 0', labArgv(...VERBS.exec!).join(' '), labArgv(...VERBS.status!).join(' ')]);
  const results = (JSON.parse(readFileSync(exported, 'utf8')) as { results: { command: string; median: number }[] }).results;
  const baseline = results[0]!.median;
  cli = results.map((r) => ({ command: r.command.replace(`${process.execPath} ${lab} --config ${config} `, 'lab '), medianMs: round(r.median * 1000), ratio: round(r.median / baseline, 2) }));
  for (const [verb, args] of Object.entries(VERBS)) {
    const samples: number[] = [];
    for (let i = 0; i < 10; i++) {
      const ms = await firstCommandMs(args);
      if (ms !== undefined) samples.push(ms);
    }
    // status may run no command at all (it reads /proc and the state).
    firstCommand[verb] = samples.length ? round(median(samples)) : null;
  }
  const samples: number[] = [];
  for (let i = 0; i < 10; i++) samples.push(await wallMs(() => benchRun(labArgv(...VERBS.restore!))));
  restore = { medianMs: round(median(samples)), samplesMs: samples.map((s) => round(s)) };
} finally {
  await benchRun(labArgv('destroy'), { allowFailure: true });
  rmSync(work, { recursive: true, force: true });
}

const markdown = [
  '| command | median (ms) | × node -e 0 | target |',
  '|---|---|---|---|',
  ...cli.map((r) => `| \`${r.command}\` | ${r.medianMs} | ${r.ratio} | ${r.command.startsWith('lab') ? '<= 1.5' : 'baseline'} |`),
  '',
  '| verb | lab JS before its first command, median of 10 (ms) | target |',
  '|---|---|---|',
  ...Object.entries(firstCommand).map(([verb, ms]) => `| \`lab ${VERBS[verb]!.join(' ')}\` | ${ms ?? 'runs none'} | <= 25 |`),
  '',
  `| \`lab restore web@haproxy\`, CLI start to running, median of 10 | ${restore?.medianMs} ms |`,
  '|---|---|',
].join('\n');
writeBenchReport('cli', { cli, firstCommandMs: firstCommand, restore }, markdown);
