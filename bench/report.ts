import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { run, type RunOptions, type RunResult } from '../lib/exec.js';
import { packageRoot } from '../lib/paths.js';

/** A benchmark's command may build a whole lab from nothing: far beyond run's default deadline for one command. */
const BENCH_COMMAND_MS = 2 * 3600_000;

/** Runs a command of a benchmark with lab's own `run`: argv only, output captured, a non-zero exit thrown unless `allowFailure`. */
export function benchRun(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return run(argv, { timeout: BENCH_COMMAND_MS, ...options });
}

/** Writes reports/bench-<name>.json (the figures, dated) and .md (the table), and prints the table. */
export function writeBenchReport(name: string, figures: Record<string, unknown>, markdown: string): void {
  const reports = path.join(packageRoot, 'reports');
  mkdirSync(reports, { recursive: true });
  writeFileSync(path.join(reports, `bench-${name}.json`), `${JSON.stringify({ date: new Date().toISOString(), ...figures }, null, 2)}\n`);
  writeFileSync(path.join(reports, `bench-${name}.md`), `${markdown}\n`);
  console.log(markdown);
}

export const median = (values: readonly number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/** Wall time of an action, in milliseconds. */
export async function wallMs(action: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await action();
  return performance.now() - started;
}
