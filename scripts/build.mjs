// npm run build: dist/ from nothing (a stage that moved from .ts to .sh leaves no stale .js behind),
// then the shell stages, which are stages as they are and which tsc does not copy, and the config's
// JSON Schema, made from the zod schema just built.
import { execFileSync } from 'node:child_process';
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
