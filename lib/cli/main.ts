import { parseArgs } from 'node:util';
import { EXIT, LabError, UsageError, unknownName } from '../errors.js';

const HELP = `lab: build, snapshot, restore and test labs of systemd-nspawn machines

Usage: lab <command> [options]

Commands:
  up [machine...]           build what changed (one snapshot per stage) and boot the lab
      --no-cache              rebuild every stage
      --from <stage>          rebuild from this stage on (<stage>, <machine>@<stage>, or a controller stage)
      --until <stage>         stop after this stage
      --wait                  wait for another lab command to finish instead of failing
      --idempotence           then apply every stage again on its own result and report what that changed (exit 1 if anything)
  restore <stage>           put every machine that has the stage back to it (or <machine>@<stage>); a controller
                            stage (a play) puts the whole lab back to just after it
  restore <checkpoint>      put every machine back to a checkpoint, running if it ran then
  restore <m>@<stage>.failed  a machine's root as it was when the stage failed (kept by lab up)
      --wait                  wait for another lab command to finish instead of failing
  test [scenario...]        bring the lab up, run the scenarios, write reports (reports/<run>/, reports/latest)
      --scenarios <dir>       where scenarios are (default: the ones shipped with lab)
      --reports <dir>         where reports go (default: ./reports)
      --serial                one scenario at a time (default: read-only ones in parallel)
      --verbose               print every test as it ends
      --capture               record each network (tcpdump) while each scenario runs; keep the pcaps of failing ones
  bisect <scenario> [machine]  where along the build (a machine's stages, or the lab's) the scenario's result changes;
                            restores as few stages as a binary search needs, then puts the lab back as it was
      --scenarios <dir>       where scenarios are
  image export <file>       a root filesystem tarball of the base image (for image.source: tarball)
      --from <machine@stage>  of a stage snapshot instead
  image upgrade             clone the base, upgrade its packages, swap it in read-only (the next lab up rebuilds on it)
  image list                base images: key, current, size, machines whose snapshots use them
  checkpoint save <name>    keep every machine as it is now (frozen for one moment), to restore later
  checkpoint list|delete    the checkpoints kept; delete <name> removes one
  status                    machines, state, addresses, stages done, snapshots
  snapshots                 every stage snapshot: created, cache key, space it holds
  exec <machine> -- <cmd>   run a command in a machine; its output and exit code are lab's
      --timeout <duration>    end it, and all it started in the machine, after this long (10s, 2m, 500ms); exit 124
  shell <machine>           an interactive shell in a machine
  console <vm>              a vm's serial console on this terminal (Ctrl-] leaves); its log: logs/<vm>/console.log
  down                      stop the machines, keep everything
  destroy                   remove everything the lab made on the host
  graph                     the lab's topology (machines, networks, addresses, DNS/DHCP, routers) as Mermaid
      -o, --output <file>     write it as .svg, .html (self-contained) or .mmd instead
  record <machine>          a scenario asserting what the machine is now: enabled and active services,
                            listening ports, addresses (a starting point to edit)
      --file <path>           also assert this file's content (repeatable)
      -o, --output <file>     write it there (a .test.ts under scenarios/) instead of printing it
  inventory                 the lab as an Ansible inventory (every machine, its groups, addresses, MACs,
                            ansible_host as the controller reaches it)
      --format <kind>         yaml (default), ini, json (as ansible-inventory --list), or ssh (an SSH config
                              with ProxyJump through the router; ssh -F <file> <machine>)
  doctor                    prerequisites, the modes in use and why, leftovers of labs

Global options:
  --config <file>           a lab.config.ts / .yaml / .json (default: ./lab.config.*, else the default lab)
  --runtime <kind>          nspawn, machinectl or auto (default: the config's, auto)
  --name <lab>              the lab's name (also LAB_NAME); labs with different names run side by side
  --json                    machine-readable output (up, restore, test, status, snapshots, doctor)
  -h, --help                this help

Exit codes: 0 ok, 1 a stage, check or scenario failed, 2 bad usage or config, 3 the host cannot do it,
4 a machine or the lab's infrastructure failed (a machine did not start, a wait for it timed out).`;

const COMMANDS = ['inventory', 'up', 'restore', 'checkpoint', 'bisect', 'graph', 'record', 'console', 'test', 'image', 'status', 'snapshots', 'exec', 'shell', 'down', 'destroy', 'doctor', 'help'];

function parse(argv: string[]) {
  const dashDash = argv.indexOf('--');
  const own = dashDash >= 0 ? argv.slice(0, dashDash) : argv;
  const passthrough = dashDash >= 0 ? argv.slice(dashDash + 1) : [];
  try {
    const { values, positionals } = parseArgs({
      args: own,
      allowPositionals: true,
      strict: true,
      options: {
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
        output: { type: 'string', short: 'o' },
        file: { type: 'string', multiple: true },
        idempotence: { type: 'boolean', default: false },
        format: { type: 'string' },
      },
    });
    return { values, positionals, passthrough };
  } catch (error) {
    throw new UsageError((error as Error).message.split('\n')[0], 'see lab --help');
  }
}

export async function main(argv: string[]): Promise<number> {
  const { values, positionals, passthrough } = parse(argv);
  const [command, ...args] = positionals;
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  if (!COMMANDS.includes(command)) throw unknownName('command', command, COMMANDS);
  handleInterruptions();
  const { runCommand } = await import('./commands.js');
  return runCommand(command, args, passthrough, {
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
    output: values.output,
    files: values.file,
    idempotence: values.idempotence,
    runtime: values.runtime,
    format: values.format,
  });
}

/** "500ms", "10s", "2m", "1h", or a number of seconds. */
export function parseDuration(text: string, field: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new UsageError(`${field}: '${text}' is not a duration (like 500ms, 10s, 2m, 1h)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? 's']!;
  const ms = Number(match[1]) * unit;
  if (ms < 1 || ms > 7 * 24 * 3_600_000) throw new UsageError(`${field}: ${text} is out of range (1ms to 7 days)`);
  return ms;
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
