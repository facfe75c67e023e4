// npm run build: dist/ from nothing (a stage that moved from .ts to .sh leaves no stale .js behind),
// then the shell stages, which are stages as they are and which tsc does not copy, the config's
// JSON Schema, made from the zod schema just built, and the CLI's bundle.
import { execFileSync } from 'node:child_process';
import { build } from 'esbuild';
import { cpSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const root = path.resolve(import.meta.dirname, '..');
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
