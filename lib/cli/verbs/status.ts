import { printStatus } from '../format.js';
import { show, type Verb } from '../verb.js';

export default {
  name: 'status',
  help: [['status', 'machines, state, addresses, stages done, snapshots']],
  needsStages: true,
  async run(lab, _args, _passthrough, options) {
    const { status } = await import('../../engine/status.js');
    show(options, await status(lab), printStatus);
    return 0;
  },
} satisfies Verb;
