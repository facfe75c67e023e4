/**
 * Benchmark of lab test --watch on the default lab (npm run bench): from an edit to its cycle's
 * line, median of 5 each, in one run with the baseline, a fresh `lab test proxy`
 * after the same edit (what a user runs without watch mode):
 * - an edit of stages/web/proxy.ts (a comment: its key changes, web@proxy is built again and web
 *   boots again), target <= 5 s;
 * - an edit of scenarios/proxy.test.ts alone, target <= 2 s.
 * Watch mode's samples first, then the baseline's (both would want the lab's lock at once).
 * The two files are put back as they were at the end. Results: reports/bench-watch.{json,md}.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawnDetached } from '../lib/exec.js';
import { compileBuiltinStage } from '../lib/engine/watch.js';
import { packageRoot } from '../lib/paths.js';
import { isAlive, refOf } from '../lib/state/process.js';
import { NORMAL, poll } from '../lib/wait.js';
import { benchRun, median, wallMs, writeBenchReport } from './report.js';

const SAMPLES = 5;
const lab = path.join(packageRoot, 'bin', 'lab.js');
const name = `bwat${process.pid.toString(36)}`.slice(0, 12);
const work = mkdtempSync('/var/tmp/lab-bench-');
const config = path.join(work, 'lab.config.json');
writeFileSync(config, JSON.stringify({ name }));
const log = path.join(work, 'watch.log'); // in the lab's directory, as a user would: watch mode leaves logs out
const stage = path.join(packageRoot, 'stages', 'web', 'proxy.ts');
const scenario = path.join(packageRoot, 'scenarios', 'proxy.test.ts');
const originals = new Map([stage, scenario].map((file) => [file, readFileSync(file, 'utf8')]));
const cli = (...args: string[]) => benchRun([process.execPath, lab, '--config', config, ...args]);
const cycles = () => readFileSync(log, 'utf8').split('\n').filter((l) => /^\[\d\d:\d\d:\d\d\] /.test(l));
const round = (ms: number) => Math.round(ms);

/** An edit's time to its cycle's line, and that line, which must say it did what was `expected`. */
async function watchCycle(edit: () => void, expected: RegExp): Promise<{ ms: number; line: string }> {
  const before = cycles().length;
  const started = performance.now();
  edit();
  await poll('the watch cycle after the edit', () => cycles().length > before, { within: 120_000, every: NORMAL });
  const ms = performance.now() - started;
  const line = cycles()[before]!;
  if (!expected.test(line)) throw new Error(`watch mode did not do what the edit asks (${expected}):\n${readFileSync(log, 'utf8')}`);
  return { ms, line };
}

let edits = 0;
const touch = (file: string) => () => appendFileSync(file, `// bench edit ${++edits}\n`);

/** A fresh `lab test proxy` after an edit, the edited built-in stage compiled as watch mode does. */
async function baseline(edit: () => void): Promise<number> {
  return wallMs(async () => {
    edit();
    await compileBuiltinStage(stage);
    await cli('test', 'proxy', '--reports', path.join(work, 'reports'));
  });
}

const results: Record<string, unknown> = {};
let watcher: ReturnType<typeof refOf>;
try {
  await cli('up');
  watcher = refOf(spawnDetached([process.execPath, lab, '--config', config, 'test', '--watch', 'proxy'], log));
  await poll('the first watch cycle', () => cycles().length > 0, { within: 300_000, every: NORMAL });
  const stageWatch: number[] = [];
  const scenarioWatch: number[] = [];
  const lines: string[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const cycle = await watchCycle(touch(stage), /proxy\.ts changed · built web@proxy, booted web · ran proxy: [1-9]\d* passed, 0 failed/);
    stageWatch.push(cycle.ms);
    lines.push(cycle.line);
  }
  for (let i = 0; i < SAMPLES; i++) {
    const cycle = await watchCycle(touch(scenario), /proxy\.test\.ts changed · ran proxy: [1-9]\d* passed, 0 failed/);
    scenarioWatch.push(cycle.ms);
    lines.push(cycle.line);
  }
  process.kill(watcher!.pid, 'SIGINT');
  await poll('watch mode to end', () => !isAlive(watcher), { within: 30_000, every: NORMAL });
  const stageBaseline: number[] = [];
  const scenarioBaseline: number[] = [];
  for (let i = 0; i < SAMPLES; i++) stageBaseline.push(await baseline(touch(stage)));
  for (let i = 0; i < SAMPLES; i++) scenarioBaseline.push(await baseline(touch(scenario)));
  results.stageEdit = { watchMs: stageWatch.map(round), watchMedianMs: round(median(stageWatch)), baselineMs: stageBaseline.map(round), baselineMedianMs: round(median(stageBaseline)), targetMs: 5000 };
  results.scenarioEdit = { watchMs: scenarioWatch.map(round), watchMedianMs: round(median(scenarioWatch)), baselineMs: scenarioBaseline.map(round), baselineMedianMs: round(median(scenarioBaseline)), targetMs: 2000 };
  results.lines = lines;
} finally {
  if (watcher && isAlive(watcher)) process.kill(watcher.pid, 'SIGINT');
  for (const [file, text] of originals) writeFileSync(file, text);
  await compileBuiltinStage(stage); // dist/ as the build made it
  await benchRun([process.execPath, lab, '--config', config, 'destroy'], { allowFailure: true });
  rmSync(work, { recursive: true, force: true });
}

const r = results as { stageEdit: { watchMedianMs: number; baselineMedianMs: number }; scenarioEdit: { watchMedianMs: number; baselineMedianMs: number }; lines: string[] };
const markdown = [
  `| edit (median of ${SAMPLES}) | lab test --watch proxy | fresh lab test proxy | target (watch) |`,
  '|---|---|---|---|',
  `| stages/web/proxy.ts (web@proxy built again, web booted) | ${r.stageEdit.watchMedianMs} ms | ${r.stageEdit.baselineMedianMs} ms | <= 5000 ms |`,
  `| scenarios/proxy.test.ts alone | ${r.scenarioEdit.watchMedianMs} ms | ${r.scenarioEdit.baselineMedianMs} ms | <= 2000 ms |`,
  '',
  'Cycle lines:',
  '',
  ...r.lines.map((l) => `    ${l}`),
].join('\n');
writeBenchReport('watch', { ...results }, markdown);
