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
