import { mkdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';

const repoRoot = path.resolve(import.meta.dirname, '../..');

/** A team's node_modules as npm lays them out with lab installed (lab, and what its scenarios import, at the top), linked to this repository's. */
export function linkInstalledLab(dir: string): void {
  for (const [name, target] of [['sadm-lab', repoRoot], ['vitest', path.join(repoRoot, 'node_modules', 'vitest')], ['@types/node', path.join(repoRoot, 'node_modules', '@types', 'node')]] as const) {
    mkdirSync(path.dirname(path.join(dir, 'node_modules', name)), { recursive: true });
    symlinkSync(target, path.join(dir, 'node_modules', name));
  }
}
