#!/usr/bin/env node
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// A clone builds itself on `npm ci` (prepare); a clone that was not built says what to run.
const dist = new URL('../dist/', import.meta.url);
const cli = new URL('lib/cli/main.js', dist);
if (!existsSync(cli)) {
  process.stderr.write(`lab: not built yet: run 'npm run build' in ${new URL('..', import.meta.url).pathname} (npm ci does it)\n`);
  process.exit(3);
}
// The CLI's bundle when the build made one (scripts/build.mjs), run with a code cache (lib/cli/bundle-loader.ts); else dist/'s modules.
const bundle = new URL('bundle/lab.cjs', dist);
const { main, reportError } = existsSync(bundle)
  ? (await import(new URL('lib/cli/bundle-loader.js', dist).href)).loadBundle(fileURLToPath(bundle))
  : await import(cli.href);
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.exitCode = reportError(error);
  },
);
