// npm run build: nothing when dist/ was built from the same sources (a key of their content);
// otherwise dist/ from nothing (a stage that moved from .ts to .sh leaves no stale .js behind),
// then the shell stages, which are stages as they are and which tsc does not copy, the config's
// JSON Schema, made from the zod schema just built, and the CLI's bundle.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { build } from 'esbuild';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const root = path.resolve(import.meta.dirname, '..');
// What dist/ is made from: the sources tsc compiles, the shell stages, and how they are built.
const INPUT_DIRS = ['lib', 'stages', 'bench'];
const INPUT_FILES = ['tsconfig.json', 'package.json', 'package-lock.json', 'scripts/build.mjs'];
const keyFile = path.join(root, 'dist', '.build-key');
const key = sourcesKey();
const built = existsSync(keyFile) && readFileSync(keyFile, 'utf8') === key && existsSync(path.join(root, 'schema', 'lab.config.schema.json'));
if (built && !process.argv.includes('--force')) process.exit(0);

rmSync(path.join(root, 'dist'), { recursive: true, force: true });
execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });
for (const machine of readdirSync(path.join(root, 'stages'))) {
  for (const file of readdirSync(path.join(root, 'stages', machine)).filter((f) => f.endsWith('.sh'))) {
    cpSync(path.join(root, 'stages', machine, file), path.join(root, 'dist', 'stages', machine, file));
  }
}
const { CONFIG_JSON_SCHEMA, configJsonSchemaText } = await import(pathToFileURL(path.join(root, 'dist', 'lib', 'config', 'json-schema.js')).href);
mkdirSync(path.dirname(path.join(root, CONFIG_JSON_SCHEMA)), { recursive: true });
writeFileSync(path.join(root, CONFIG_JSON_SCHEMA), configJsonSchemaText());

// The CLI and the package's entry (what a team's stages import) as one bundle split at the CLI's lazy
// imports (dist/bundle/): a few chunks load faster than the ~90 modules of dist/ they hold (lab
// restore's JavaScript before its first command ~150 ms rather than ~90; a single file, unsplit, was
// slower). Both entries share their chunks, so a team's stage and the CLI hold one copy of each of
// lab's modules (its error classes among them). Packages stay in node_modules.
const bundle = await build({
  entryPoints: { main: path.join(root, 'dist', 'lib', 'cli', 'main.js'), index: path.join(root, 'dist', 'lib', 'index.js') },
  outdir: path.join(root, 'dist', 'bundle'),
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  metafile: true,
  logLevel: 'warning',
});
// What each chunk holds: the unit tests check that lab exec's loads no package it does not need.
writeFileSync(path.join(root, 'dist', 'bundle', 'meta.json'), JSON.stringify(bundle.metafile));
writeFileSync(keyFile, key);

function sourcesKey() {
  const hash = createHash('sha256');
  const files = [...INPUT_FILES, ...INPUT_DIRS.flatMap((dir) => readdirSync(path.join(root, dir), { recursive: true }).map((f) => path.join(dir, f)))];
  for (const file of files.sort()) {
    const full = path.join(root, file);
    if (!existsSync(full) || !statSync(full).isFile()) continue;
    hash.update(`${file}\0`).update(readFileSync(full)).update('\0');
  }
  return hash.digest('hex');
}
