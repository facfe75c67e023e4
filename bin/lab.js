#!/usr/bin/env node
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

// A clone builds itself on `npm ci` (prepare); a clone that was not built says what to run.
const dist = new URL('../dist/', import.meta.url);
const cli = new URL('lib/cli/main.js', dist);
if (!existsSync(cli)) {
  process.stderr.write(`lab: not built yet: run 'npm run build' in ${new URL('..', import.meta.url).pathname} (npm ci does it)\n`);
  process.exit(3);
}
// The CLI's bundle when the build made one (scripts/build.mjs), run with a code cache by its loader (lib/cli/bundle-loader.ts,
// CommonJS: required); else dist/'s modules.
const loader = new URL('bundle/loader.cjs', dist);
const { main, reportError } = existsSync(loader)
  ? createRequire(import.meta.url)(fileURLToPath(loader)).loadBundle(fileURLToPath(new URL('bundle/lab.cjs', dist)))
  : await import(cli.href);
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.exitCode = reportError(error);
  },
);
