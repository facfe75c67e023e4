import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * The command line's own options (before `--`), for every verb.
 */
const OPTIONS = {
  config: { type: 'string' },
  name: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
  'no-cache': { type: 'boolean', default: false },
  from: { type: 'string' },
  until: { type: 'string' },
  wait: { type: 'boolean', default: false },
  timeout: { type: 'string' },
  scenarios: { type: 'string' },
  runtime: { type: 'string' },
  reports: { type: 'string' },
  serial: { type: 'boolean', default: false },
  verbose: { type: 'boolean', default: false },
  capture: { type: 'boolean', default: false },
  watch: { type: 'boolean', default: false },
  debug: { type: 'boolean', default: false },
  lab: { type: 'boolean', default: false },
  'dry-run': { type: 'boolean', default: false },
  shard: { type: 'string' },
  'shard-durations': { type: 'string' },
  output: { type: 'string', short: 'o' },
  file: { type: 'string', multiple: true },
  idempotence: { type: 'boolean', default: false },
  format: { type: 'string' },
  good: { type: 'string' },
  bad: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

/** The command line split: its options and positionals, and what follows `--`. Throws node's own error on an unknown option. */
export function splitCommandLine(argv: readonly string[]) {
  const dashDash = argv.indexOf('--');
  const own = dashDash >= 0 ? argv.slice(0, dashDash) : [...argv];
  const passthrough = dashDash >= 0 ? argv.slice(dashDash + 1) : [];
  const { values, positionals } = parseArgs({ args: own, allowPositionals: true, strict: true, options: OPTIONS });
  return { values, positionals, passthrough };
}

/**
 * How many positionals a verb's usages take at most (its help lines that start with its name):
 * each `<x>` or `[x]` is one, a `...` any number; undefined when a usage names a subcommand (a
 * plain word: `cache push <dir>`), which the verb checks itself. What follows `--` is not counted.
 */
export function maxPositionals(name: string, usages: readonly string[]): number | undefined {
  let most = 0;
  for (const usage of usages) {
    const words = usage.split(/\s+/);
    if (words[0] !== name) continue;
    const before = words.slice(1, words.includes('--') ? words.indexOf('--') : undefined).filter((w) => !w.startsWith('-'));
    if (before.some((w) => !/^[<[]/.test(w))) return undefined;
    if (before.some((w) => w.includes('...'))) return Infinity;
    most = Math.max(most, before.length);
  }
  return most;
}
