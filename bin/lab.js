#!/usr/bin/env node
import { existsSync } from 'node:fs';

// A clone builds itself on `npm ci` (prepare); a clone that was not built says what to run.
const dist = new URL('../dist/', import.meta.url);
const cli = new URL('lib/cli/main.js', dist);
if (!existsSync(cli)) {
  process.stderr.write(`lab: not built yet: run 'npm run build' in ${new URL('..', import.meta.url).pathname} (npm ci does it)\n`);
  process.exit(3);
}
const argv = process.argv.slice(2);
// The verbs typed all day load the CLI's bundle when the build made one (see lib/cli/args.ts).
const { BUNDLED_VERBS, commandOf } = await import(new URL('lib/cli/args.js', dist).href);
const bundle = new URL('bundle/main.js', dist);
const entry = BUNDLED_VERBS.has(commandOf(argv)) && existsSync(bundle) ? bundle : cli;
const { main, reportError } = await import(entry.href);
main(argv).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.exitCode = reportError(error);
  },
);
