import { UsageError } from '../../errors.js';
import type { BareLab } from '../../engine/lab-types.js';
import type { MachineHandle } from '../../runtime/runtime.js';
import type { Verb } from '../verb.js';

export default {
  name: 'exec',
  help: [
    ['exec <machine> -- <cmd>', 'run a command in a machine; its output and exit code are lab\'s'],
    ['--timeout <duration>', 'end it, and all it started in the machine, after this long (10s, 2m, 500ms); exit 124'],
  ],
  needsStages: false,
  async run(lab, args, passthrough, options) {
    const [machine, ...rest] = args;
    const argv = [...rest, ...passthrough];
    if (!machine || argv.length === 0) throw new UsageError('usage: lab exec <machine> -- <command> [args...]');
    return runInMachine(lab, machine, (handle) => execInteractive(lab, handle, argv, options.timeout));
  },
} satisfies Verb;

const EXIT_TIMED_OUT = 124; // as timeout(1)

/**
 * `lab exec`: the command runs with the terminal; when its time is up it is ended in the machine
 * with everything it started there. (SIGINT, SIGTERM and SIGHUP do the same: cli/main.ts.)
 */
async function execInteractive(lab: BareLab, handle: MachineHandle, argv: string[], timeout = 24 * 3600_000): Promise<number> {
  const { CommandError, formatArgv } = await import('../../exec.js');
  try {
    return (await lab.runtime.exec(handle, argv, { inherit: true, allowFailure: true, timeout })).exitCode;
  } catch (error) {
    if (!(error instanceof CommandError && error.timedOut)) throw error;
    process.stderr.write(`lab: ${formatArgv(argv)} timed out after ${timeout} ms: it was ended in ${handle.name}, with everything it started there\n`);
    return EXIT_TIMED_OUT;
  }
}

/** The body, on a running container (lab exec and lab shell). */
export async function runInMachine(lab: BareLab, machine: string, body: (handle: MachineHandle) => Promise<number>): Promise<number> {
  const [{ assertMachine, isRunning }, { readState }] = await Promise.all([import('../../engine/machines.js'), import('../../state/state.js')]);
  assertMachine(lab, machine);
  const state = readState(lab.dirs.stateFile);
  const backend = lab.backendOf(machine);
  if (!backend.exec) throw new UsageError(`${machine} is ${backend.what}: lab runs no command in it`, `attach to its serial console with: lab console ${machine}`);
  if (!isRunning(state, machine)) throw new UsageError(`machine ${machine} is not running`, 'start the lab with: lab up');
  return body({ name: machine, process: state.machines[machine]!.process! });
}
