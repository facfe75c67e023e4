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

/**
 * The directory of lab's own modules of `area` (say 'lib/stages'), for a module of it given its
 * import.meta.url and a sibling file it has: that module's own directory when it runs from dist/ or
 * from the sources, dist/<area> when it runs from the CLI's bundle (dist/bundle/ holds chunks).
 */
export function ownModuleDir(moduleUrl: string, area: string, sibling: string): { dir: string; extension: string } {
  const here = fileURLToPath(moduleUrl);
  const extension = path.extname(here);
  if (existsSync(path.join(path.dirname(here), `${sibling}${extension}`))) return { dir: path.dirname(here), extension };
  return { dir: path.join(packageRoot, 'dist', area), extension: '.js' };
}
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
