import { UsageError } from '../../errors.js';
import type { Verb } from '../verb.js';

export default {
  name: 'console',
  help: [['console <vm>', 'a vm\'s serial console on this terminal (Ctrl-] leaves); its log: logs/<vm>/console.log']],
  needsStages: false,
  async run(lab, args) {
    const [machine, ...extra] = args;
    if (!machine || extra.length > 0) throw new UsageError('usage: lab console <vm>');
    const [{ assertMachine, isRunning }, { readState }] = await Promise.all([import('../../engine/machines.js'), import('../../state/state.js')]);
    assertMachine(lab, machine);
    const backend = lab.backendOf(machine);
    const console = backend.console?.(lab, machine);
    if (!console) throw new UsageError(`${machine} is ${backend.what}: it has no serial console of lab's`, `use lab shell ${machine}`);
    if (!isRunning(readState(lab.dirs.stateFile), machine)) throw new UsageError(`vm ${machine} is not running`, 'start the lab with: lab up');
    const { attachConsole } = await import('../../vm/console.js');
    await attachConsole(console.socket, process.stdin, process.stdout);
    return 0;
  },
} satisfies Verb;
