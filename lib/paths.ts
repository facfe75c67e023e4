import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's root: the nearest directory above this module with a package.json (works from dist/ and from sources). */
function findPackageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('lab: cannot find its package.json');
    dir = parent;
  }
  return dir;
}

export const packageRoot = findPackageRoot();
/** On npm, `lab` is another project (hapi's test runner): this one installs as sadm-lab, its command is still `lab`. */
export const PACKAGE_NAME = 'sadm-lab';
export const builtinStagesDir = path.join(packageRoot, 'dist', 'stages');
export const builtinFixturesDir = path.join(packageRoot, 'fixtures');
/** What lab keeps on the host until it reboots, for every lab: caches, the registry of nosuid binds. */
export const LAB_RUN_DIR = '/run/lab';

/** A directory only its owner can enter: made so, or closed again when it existed. Returns it. */
export function privateDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  return dir;
}
