import { existsSync, readdirSync } from 'node:fs';
import { EXIT, LabError, UsageError, unknownName } from '../errors.js';
import type { GlobalOptions, HelpLine, Verb } from './verb.js';
import { maxPositionals, splitCommandLine } from './args.js';
import { parseDuration } from '../wait.js';

/**
 * Every verb, in the order lab --help shows them. A verb's module is loaded only when it is the
 * one asked for (or for the help), so that lab exec and lab status load nothing of the others'.
 */
const VERBS: Record<string, () => Promise<{ default: Verb }>> = {
  init: () => import('./verbs/init.js'),
  validate: () => import('./verbs/validate.js'),
  up: () => import('./verbs/up.js'),
  restore: () => import('./verbs/restore.js'),
  test: () => import('./verbs/test.js'),
  report: () => import('./verbs/report.js'),
  bisect: () => import('./verbs/bisect.js'),
  image: () => import('./verbs/image.js'),
  checkpoint: () => import('./verbs/checkpoint.js'),
  status: () => import('./verbs/status.js'),
  snapshots: () => import('./verbs/snapshots.js'),
  cache: () => import('./verbs/cache.js'),
  exec: () => import('./verbs/exec.js'),
  shell: () => import('./verbs/shell.js'),
  cp: () => import('./verbs/cp.js'),
  repl: () => import('./verbs/repl.js'),
  console: () => import('./verbs/console.js'),
  down: () => import('./verbs/down.js'),
  destroy: () => import('./verbs/destroy.js'),
  graph: () => import('./verbs/graph.js'),
  record: () => import('./verbs/record.js'),
  inventory: () => import('./verbs/inventory.js'),
  doctor: () => import('./verbs/doctor.js'),
};

const COMMANDS = [...Object.keys(VERBS), 'help'];

const GLOBAL_OPTIONS: HelpLine[] = [
  ['--config <file>', 'a lab.config.ts / .yaml / .json (default: ./lab.config.*, else the default lab)'],
  ['--runtime <kind>', 'nspawn, machinectl or auto (default: the config\'s, auto)'],
  ['--name <lab>', 'the lab\'s name (also LAB_NAME); labs with different names run side by side'],
  ['--json', 'machine-readable output (up, restore, test, status, snapshots, cache, doctor)'],
  ['-h, --help', 'this help'],
];

async function help(): Promise<string> {
  const verbs = await Promise.all(Object.values(VERBS).map(async (load) => (await load()).default));
  return [
    'lab: build, snapshot, restore and test labs of systemd-nspawn machines',
    '',
    'Usage: lab <command> [options]',
    '',
    'Commands:',
    ...verbs.flatMap((verb) => helpLines(verb.help, { nested: true })),
    '',
    'Global options:',
    ...helpLines(GLOBAL_OPTIONS, { nested: false }),
    '',
    'Exit codes: 0 ok, 1 a stage, check or scenario failed, 2 bad usage or config, 3 the host cannot do it,',
    '4 a machine or the lab\'s infrastructure failed (a machine did not start, a wait for it timed out).',
  ].join('\n');
}

/** Usages from column 2 and a verb's options (nested) from column 6; what they do from column 28, or 30 for options. */
function helpLines(lines: HelpLine[], { nested }: { nested: boolean }): string[] {
  return lines.flatMap(([left, ...about]) => {
    const [indent, column] = nested && left.startsWith('-') ? [6, 30] : [2, 28];
    return about.map((line, i) => `${i === 0 ? `${' '.repeat(indent)}${left}  ` : ''}`.padEnd(column) + line);
  });
}

function parse(argv: string[]) {
  try {
    return splitCommandLine(argv);
  } catch (error) {
    throw new UsageError((error as Error).message.split('\n')[0], 'see lab --help');
  }
}

export async function main(argv: string[]): Promise<number> {
  const { values, positionals, passthrough } = parse(argv);
  const [command, ...args] = positionals;
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(`${await help()}\n`);
    return 0;
  }
  if (!Object.hasOwn(VERBS, command)) throw unknownName('command', command, COMMANDS);
  handleInterruptions();
  const [{ default: verb }, { openBareLab, openLab }] = await Promise.all([VERBS[command]!(), import('../engine/lab.js')]);
  // `lab down web` would stop every machine: an argument a verb has no place for is refused.
  const most = maxPositionals(verb.name, verb.help.map(([usage]) => usage));
  if (most !== undefined && args.length > most) {
    throw new UsageError(`lab ${command} takes ${most === 0 ? 'no argument' : `at most ${most} argument${most > 1 ? 's' : ''}`} (given: ${args.join(' ')})`, `usage: lab ${verb.help[0]![0]}`);
  }
  const options: GlobalOptions = {
    config: values.config,
    name: values.name ?? process.env.LAB_NAME,
    json: values.json,
    noCache: values['no-cache'],
    from: values.from,
    until: values.until,
    wait: values.wait,
    timeout: values.timeout === undefined ? undefined : parseDuration(values.timeout, '--timeout'),
    scenarios: values.scenarios,
    reports: values.reports,
    serial: values.serial,
    verbose: values.verbose,
    capture: values.capture,
    watch: values.watch,
    debug: values.debug,
    wholeLab: values.lab,
    dryRun: values['dry-run'],
    shard: values.shard,
    shardDurations: values['shard-durations'],
    output: values.output,
    files: values.file,
    idempotence: values.idempotence,
    runtime: values.runtime,
    format: values.format,
    good: values.good,
    bad: values.bad,
  };
  if ('opensLab' in verb) return verb.run(args, options);
  const where = { file: options.config, name: options.name, runtime: options.runtime, checkPaths: !verb.toleratesMissingPaths };
  if (verb.needsStages) {
    const lab = await openLab(where);
    // A bisect killed before it put the lab back left its checkpoint: the way back (one directory read when there is none).
    if (existsSync(lab.dirs.checkpointsDir) && readdirSync(lab.dirs.checkpointsDir).some((f) => /^lab-bisect-\d+\.json$/.test(f))) {
      await (await import('../engine/bisect.js')).finishAbandonedBisects(lab);
    }
    return verb.run(lab, args, passthrough, options);
  }
  return verb.run(await openBareLab(where), args, passthrough, options);
}

const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };

/**
 * SIGINT, SIGTERM or SIGHUP to lab: every command it is running is ended (with what it started
 * in machines), the lab's lock is released, and lab says so. Machines it already booted keep
 * running; a killed build step leaves its stage unsnapshotted, and the next lab up resumes.
 */
export function handleInterruptions(): void {
  let interrupted = false;
  for (const signal of Object.keys(SIGNAL_EXIT)) {
    process.on(signal, () => {
      if (interrupted) return;
      interrupted = true;
      void (async () => {
        const [{ interruptCommands }, { beginInterruption, runInterruptCleanups }, { releaseHeldLocks }] = await Promise.all([
          import('../exec.js'),
          import('../interrupt.js'),
          import('../state/lock.js'),
        ]);
        beginInterruption();
        const ended = await interruptCommands();
        // Still holding the lock: a cleanup puts the lab back before anyone else may touch it.
        const cleaned = await runInterruptCleanups();
        const released = releaseHeldLocks();
        const what = [ended ? `ended ${ended} running command(s)` : '', cleaned ? 'put the lab back' : '', released.length ? 'released the lab\'s lock' : ''].filter(Boolean).join(', ');
        process.stderr.write(`lab: interrupted by ${signal}${what ? `: ${what}` : ''}\n`);
        process.exit(SIGNAL_EXIT[signal]);
      })();
    });
  }
}

export function reportError(error: unknown): number {
  if (error instanceof LabError) {
    process.stderr.write(`lab: ${error.message}\n${error.hint ? `hint: ${error.hint}\n` : ''}`);
    return error.exitCode;
  }
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    const where = (error as NodeJS.ErrnoException).path;
    process.stderr.write(`lab: no space left on the device${where ? ` holding ${where}` : ''}\nhint: free some space there (lab destroy of labs you no longer need; lab up prunes old snapshots), or move stateDir\n`);
    return EXIT.HOST;
  }
  process.stderr.write(`lab: internal error: ${(error as Error)?.stack ?? String(error)}\n`);
  return EXIT.INTERNAL;
}
