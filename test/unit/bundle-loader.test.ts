import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { cachePurpose, codeCacheFile, writeAtomically } from '../../lib/cli/bundle-loader.js';

const work = mkdtempSync(path.join(tmpdir(), 'lab-bundle-loader-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const repoRoot = path.resolve(import.meta.dirname, '..', '..');
const loader = pathToFileURL(path.join(repoRoot, 'lib', 'cli', 'bundle-loader.ts')).href;
const tsx = pathToFileURL(path.join(repoRoot, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

/** Runs `script` as a bundle (in the test's directory, its packages there), its cache in cacheDir, in a node of its own (the cache is written at exit): what it printed. */
function runAsBundle(script: string, cacheDir: string): string {
  const file = path.join(work, 'bundle.cjs');
  writeFileSync(file, script);
  const driver = `import { runBundle } from ${JSON.stringify(loader)};
    const exports = runBundle(${JSON.stringify(file)}, (specifier) => import(specifier), { dir: ${JSON.stringify(cacheDir)}, purpose: 'exec' });
    console.log(await exports.answer());`;
  return execFileSync(process.execPath, ['--import', tsx, '--input-type=module', '-e', driver], { cwd: work, encoding: 'utf8', timeout: 60_000 }).trim();
}

describe("the CLI bundle's code cache", () => {
  it('is keyed by the content, not only its length (V8 checks only that), and by the bundle, the runtime and the verb', () => {
    const a = codeCacheFile('module.exports = 1;', '/a/lab.cjs', work, 'exec', 'v20 x64');
    expect(codeCacheFile('module.exports = 1;', '/a/lab.cjs', work, 'exec', 'v20 x64')).toBe(a);
    expect(codeCacheFile('module.exports = 2;', '/a/lab.cjs', work, 'exec', 'v20 x64')).not.toBe(a);
    expect(codeCacheFile('module.exports = 1;', '/b/lab.cjs', work, 'exec', 'v20 x64')).not.toBe(a);
    expect(codeCacheFile('module.exports = 1;', '/a/lab.cjs', work, 'exec', 'v22 x64')).not.toBe(a);
    expect(codeCacheFile('module.exports = 1;', '/a/lab.cjs', work, 'status', 'v20 x64')).not.toBe(a);
    expect(path.dirname(a)).toBe(work);
  });

  it('is written whole, into a new file renamed over the old one, and leaves no partial file', () => {
    const file = path.join(work, 'atomic.bin');
    writeFileSync(file, 'old');
    const before = statSync(file).ino;
    writeAtomically(file, Buffer.from('new cache'));
    expect(readFileSync(file, 'utf8')).toBe('new cache');
    expect(statSync(file).ino).not.toBe(before); // renamed into place, not rewritten where a reader may be
    expect(readdirSync(work).filter((f) => f.includes('partial'))).toEqual([]);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it("is made by the first run and used by the next; a bundle changed to the same length runs its new code, from a cache of its own that replaces the old one (another bundle's stays)", () => {
    const cacheDir = path.join(work, 'cache');
    mkdirSync(cacheDir, { recursive: true });
    const another = path.join(cacheDir, `${'0'.repeat(32)}-exec-${'1'.repeat(32)}.bin`);
    writeFileSync(another, 'a cache of another checkout');
    // The bundle's import() is the loader's function (build.mjs renames it): a package, then a value from it.
    const bundle = (n: number) => `exports.answer = async () => (await __labImport('node:path')).join('v', '${n}');`;
    const ours = () => readdirSync(cacheDir).filter((f) => f !== path.basename(another));
    expect(runAsBundle(bundle(1), cacheDir)).toBe('v/1');
    const [first] = ours();
    expect(ours()).toHaveLength(1);
    expect(first).toMatch(/-exec-[0-9a-f]{32}\.bin$/);
    const made = statSync(path.join(cacheDir, first!)).mtimeMs;
    expect(runAsBundle(bundle(1), cacheDir)).toBe('v/1');
    expect(statSync(path.join(cacheDir, first!)).mtimeMs).toBe(made); // used, not written again
    expect(runAsBundle(bundle(2), cacheDir)).toBe('v/2');
    expect(ours()).toHaveLength(1);
    expect(ours()[0]).not.toBe(first);
    expect(readdirSync(cacheDir)).toContain(path.basename(another));
    expect(readdirSync(cacheDir).filter((f) => f.includes('partial'))).toEqual([]);
  });

  it('gives a static import of an ES-only package (a require in the script) the module its import() loaded', () => {
    // As vitest: its require() entry throws.
    const esOnly = path.join(work, 'node_modules', 'es-only');
    mkdirSync(esOnly, { recursive: true });
    writeFileSync(path.join(esOnly, 'package.json'), JSON.stringify({ name: 'es-only', exports: { import: './index.mjs', require: './index.cjs' } }));
    writeFileSync(path.join(esOnly, 'index.mjs'), 'export const value = 42;');
    writeFileSync(path.join(esOnly, 'index.cjs'), "throw new Error('es-only cannot be required');");
    const bundle = "exports.answer = async () => { await __labImport('es-only'); return require('es-only').value; };";
    expect(runAsBundle(bundle, path.join(work, 'cache-es-only'))).toBe('42');
  });

  it("picks the verb's cache from the command line, past the global options that take a value", () => {
    expect(cachePurpose(['exec', 'gw', '--', 'true'])).toBe('exec');
    expect(cachePurpose(['--name', 'hcl1', '--config', 'lab.yaml', '--json', 'status'])).toBe('status');
    expect(cachePurpose(['--config=lab.yaml', 'restore', 'web@haproxy'])).toBe('restore');
    expect(cachePurpose(['--help'])).toBe('help');
    expect(cachePurpose(['../odd name'])).toBe('other');
  });
});
