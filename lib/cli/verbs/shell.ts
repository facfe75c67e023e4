import { UsageError } from '../../errors.js';
import type { Verb } from '../verb.js';
import { runInMachine } from './exec.js';

export default {
  name: 'shell',
  help: [['shell <machine>', 'an interactive shell in a machine']],
  needsStages: false,
  async run(lab, args) {
    const [machine] = args;
    if (!machine) throw new UsageError('usage: lab shell <machine>');
    return runInMachine(lab, machine, (handle) => lab.runtime.shell(handle));
  },
} satisfies Verb;
