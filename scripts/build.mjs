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

// The CLI as a bundle split at its lazy imports (dist/bundle/), for the verbs of cli/args.ts's
// BUNDLED_VERBS: a few chunks load faster than the ~60 modules of dist/ they hold (lab exec spends
// ~35 ms of JavaScript before its first command rather than ~50; a single file, unsplit, was slower).
// Packages stay in node_modules.
const bundle = await build({
  entryPoints: [path.join(root, 'dist', 'lib', 'cli', 'main.js')],
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
