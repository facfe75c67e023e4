import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { CODE_CACHE_DIR, codeCacheFile } from '../../lib/cli/bundle-loader.js';

const repoRoot = path.resolve(import.meta.dirname, '..', '..');
const work = mkdtempSync(path.join(tmpdir(), 'lab-hot-path-'));
const hook = pathToFileURL(path.join(import.meta.dirname, 'hooks', 'record-modules.mjs')).href;
// A lab of its own, its state in the test's directory: nothing of it runs, so exec and status read an empty state.
const config = path.join(work, 'lab.config.json');
writeFileSync(config, JSON.stringify({ name: 'hotpath', stateDir: path.join(work, 'state') }));
afterAll(() => rmSync(work, { recursive: true, force: true }));
// What each command loads: its ES modules (the hook) and, at exit, what it required (the bundle's packages are CommonJS requires).
const required = `process.on('exit', () => appendFileSync(process.env.LAB_MODULES_OUT, Object.keys(Module._cache).map((f) => pathToFileURL(f).href + '\\n').join('')));`;
const register = `data:text/javascript,import { Module, register } from 'node:module'; import { appendFileSync } from 'node:fs'; import { pathToFileURL } from 'node:url'; register(${JSON.stringify(hook)}); ${required}`;

/** The files lab loads for a command, relative to the repository (packages as node_modules/<name>). */
function modulesOf(...args: string[]): string[] {
  const out = path.join(work, `${args[0]}.modules`);
  writeFileSync(out, '');
  try {
    execFileSync(process.execPath, ['--import', register, path.join(repoRoot, 'bin', 'lab.js'), '--config', config, ...args], { env: { ...process.env, LAB_MODULES_OUT: out }, stdio: 'pipe', timeout: 60_000 });
  } catch {
    // exec: 'machine gw is not running', exit 2; the modules are what is looked at
  }
  const files = readFileSync(out, 'utf8').split('\n').filter(Boolean).map((url) => path.relative(repoRoot, new URL(url).pathname));
  return [...new Set(files.map((f) => f.replace(/^(node_modules\/(@[^/]+\/)?[^/]+)\/.*$/, '$1')))];
}

const NOT_FOR_THE_HOT_PATH = ['zod', 'yaml', 'listr2', 'vitest', 'tsx', 'typescript', 'tap-parser'].map((p) => `node_modules/${p}`);

describe("the CLI's hot path", () => {
  // The validated config is kept for root only (config/cache.ts): without it, every command validates.
  it.runIf(process.getuid?.() === 0)('lab exec runs from the bundle (with its code cache), and loads no package of the config, the progress display or the tests', () => {
    modulesOf('exec', 'gw', '--', 'true'); // validates the config (zod) and keeps its validated form
    const modules = modulesOf('exec', 'gw', '--', 'true');
    // The bundle itself is compiled by the loader (vm), not loaded as a module.
    expect(modules).toEqual(['bin/lab.js', 'dist/bundle/loader.cjs']);
    // The cache of this bundle for exec (made by the first run at the latest), for node as the test runs it.
    const bundleFile = path.join(repoRoot, 'dist', 'bundle', 'lab.cjs');
    expect(existsSync(codeCacheFile(readFileSync(bundleFile), bundleFile, CODE_CACHE_DIR, 'exec', `${process.version} ${process.arch} --import ${register}`))).toBe(true);
  });

  it.runIf(process.getuid?.() === 0)('lab status runs from the bundle too, with the stages of the default lab, and loads no package of the config (cached), the progress display or the tests', () => {
    modulesOf('status');
    const modules = modulesOf('status');
    // Of dist/ itself, the bundle's loader and the built-in stages (and the identity function they import).
    expect(modules.filter((m) => m.startsWith('dist/') && !m.startsWith('dist/stages/')).sort()).toEqual(['dist/bundle/loader.cjs', 'dist/lib/stages/define.js']);
    expect(modules.filter((m) => NOT_FOR_THE_HOT_PATH.includes(m))).toEqual([]);
  });
});
