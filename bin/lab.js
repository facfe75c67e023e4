#!/usr/bin/env node
import { existsSync } from 'node:fs';

// A clone builds itself on `npm ci` (prepare); a clone that was not built says what to run.
const cli = new URL('../dist/lib/cli/main.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write(`lab: not built yet: run 'npm run build' in ${new URL('..', import.meta.url).pathname} (npm ci does it)\n`);
  process.exit(3);
}
const { main, reportError } = await import(cli.href);
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.exitCode = reportError(error);
  },
);
