/**
 * Preloaded by bench/cli.ts (node --import): writes to stderr how long lab's own JavaScript ran
 * before its first external command (from this preload, which runs just before bin/lab.js, to the
 * first spawn), as `lab-first-command-ms <ms>`.
 */
import childProcess from 'node:child_process';
import { writeSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const started = performance.now();
const spawn = childProcess.spawn;
let reported = false;
childProcess.spawn = function (this: unknown, ...args: Parameters<typeof spawn>) {
  if (!reported) {
    reported = true;
    writeSync(2, `lab-first-command-ms ${(performance.now() - started).toFixed(1)}\n`);
  }
  return spawn.apply(this, args);
} as typeof spawn;
syncBuiltinESMExports(); // lib/exec.ts imports spawn by name: it sees this one
