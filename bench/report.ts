import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../lib/paths.js';

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
