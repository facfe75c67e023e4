import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import vm from 'node:vm';

/**
 * Runs the CLI's bundle (dist/bundle/lab.cjs, one CommonJS script: scripts/build.mjs) with a V8 code
 * cache: a command compiles none of lab's JavaScript it ran before, where Node 20 compiles every ES
 * module anew each time (lab exec's own JavaScript before its first command, medians on a busy 2-core machine: 74 ms to 39; lab restore's 136 to 76).
 * The cache is keyed by the bundle's content, node's version and the V8 flags, so a stale one is never
 * used (V8 itself checks only the source's length); it is written once, when there was none or V8
 * refused it, as a .partial file renamed into place. Root only, in a directory only root enters:
 * cached code is code lab runs.
 */

/** What the bundle exports: the CLI's main, and the package's entry when asked for (dist/bundle/index.js re-exports it). */
export type BundleExports = Record<string, unknown>;

/** Where the caches are kept until the host reboots. */
export const CODE_CACHE_DIR = '/run/lab/code-cache';

const sha256 = (...parts: (string | Buffer)[]) => parts.reduce((hash, part) => hash.update(part).update('\0'), createHash('sha256')).digest('hex').slice(0, 32);

/**
 * The cache file of a bundle's content, for one verb (`purpose`), named `<where>-<verb>-<content>.bin`:
 * `where` is the bundle's path and the runtime (node's version and flags: V8 refuses a cache of
 * others), so that a rebuilt bundle's caches replace its old ones and another checkout's stay.
 */
export function codeCacheFile(source: string | Buffer, bundle: string, dir: string, purpose: string, runtime = `${process.version} ${process.arch} ${process.execArgv.join(' ')}`): string {
  return path.join(dir, `${sha256(bundle, runtime)}-${purpose}-${sha256(source)}.bin`);
}

/** Writes the cache `file` as a whole, and removes the caches of the bundle's earlier contents (codeCacheFile). */
export function replaceCodeCache(file: string, data: Buffer): void {
  writeAtomically(file, data);
  const name = path.basename(file);
  const earlier = name.slice(0, name.lastIndexOf('-') + 1);
  for (const other of readdirSync(path.dirname(file))) {
    if (other.startsWith(earlier) && other !== name && other.endsWith('.bin')) rmSync(path.join(path.dirname(file), other), { force: true });
  }
}

/** Global options that take a value (cli/args.ts): what comes after them is not the verb. */
const VALUED_GLOBALS = new Set(['--config', '--name', '--runtime']);

/**
 * The verb of a command line, guessed before the CLI parses it, to pick a cache holding what that verb
 * compiles (a cache is written once, by the first command of its kind). A wrong guess costs a compile,
 * never correctness: the cache is keyed by the bundle's content either way.
 */
export function cachePurpose(argv: readonly string[]): string {
  for (let i = 0; i < argv.length; i++) {
    if (VALUED_GLOBALS.has(argv[i]!)) i++;
    else if (!argv[i]!.startsWith('-')) return /^[a-z]{1,20}$/.test(argv[i]!) ? argv[i]! : 'other';
  }
  return 'help';
}

/** Writes `data` to `file` as a whole or not at all: another command never reads half a cache. */
export function writeAtomically(file: string, data: Buffer): void {
  const partial = `${file}.${process.pid}.partial`;
  writeFileSync(partial, data, { mode: 0o600 });
  renameSync(partial, file);
}

function readOrUndefined(file: string): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch {
    return undefined;
  }
}

/**
 * Compiles and runs the bundle `file` (with its cache in `cache.dir`, when given) and returns its exports.
 * Its `import()`s of packages and of a lab's own modules (build.mjs names them `__labImport`) are made
 * by `importModule`: a script compiled from a code cache has no import() of its own in Node 20.
 */
export function runBundle(file: string, importModule: (specifier: string) => Promise<unknown>, cache?: { dir: string; purpose: string }): BundleExports {
  const source = readFileSync(file, 'utf8');
  const cacheFile = cache && codeCacheFile(source, file, cache.dir, cache.purpose);
  const cachedData = cacheFile === undefined ? undefined : readOrUndefined(cacheFile);
  // The same wrapper as node's own for a CommonJS module, and one more parameter.
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname, __labImport) {${source}\n})`, { filename: file, cachedData });
  const module = { exports: {} as BundleExports };
  // A package the script imports statically becomes a require(): an ES-only one (vitest) is the one its
  // import() already loaded (the module importing it is initialized after).
  const imported = new Map<string, unknown>();
  const importAndKeep = async (specifier: string) => {
    const namespace = await importModule(specifier);
    imported.set(specifier, namespace);
    return namespace;
  };
  const nodeRequire = createRequire(file);
  const requireOrImported = Object.assign((id: string) => (imported.has(id) ? imported.get(id) : nodeRequire(id)), nodeRequire);
  script.runInThisContext()(module.exports, requireOrImported, module, file, path.dirname(file), importAndKeep);
  if (cacheFile && (!cachedData || script.cachedDataRejected)) {
    // At exit: the cache then holds every function the command compiled, not only the bundle's top level.
    process.once('exit', () => {
      try {
        mkdirSync(cache!.dir, { recursive: true, mode: 0o700 });
        replaceCodeCache(cacheFile, script.createCachedData());
      } catch {
        // a cache: the next command compiles again
      }
    });
  }
  return module.exports;
}

const LOADED = Symbol.for('sadm-lab.bundle');

/**
 * The bundle beside dist/lib (dist/bundle/lab.cjs), run once per process: the CLI and the package's entry
 * (what a team's stages import) share one copy of each of lab's modules.
 */
export function loadBundle(file: string): BundleExports {
  const global = globalThis as { [LOADED]?: BundleExports };
  const cache = process.getuid?.() === 0 ? { dir: CODE_CACHE_DIR, purpose: cachePurpose(process.argv.slice(2)) } : undefined;
  return (global[LOADED] ??= runBundle(file, (specifier) => import(specifier), cache));
}
