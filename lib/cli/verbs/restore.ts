import { UsageError } from '../../errors.js';
import { printRestore } from '../format.js';
import { show, type Verb } from '../verb.js';

export default {
  name: 'restore',
  help: [
    ['restore <stage>', 'put every machine that has the stage back to it (or <machine>@<stage>); a controller', 'stage (a play) puts the whole lab back to just after it'],
    ['restore <checkpoint>', 'put every machine back to a checkpoint, running if it ran then'],
    ['restore <m>@<stage>.failed', 'a machine\'s root as it was when the stage failed (kept by lab up)'],
    ['--wait', 'wait for another lab command to finish instead of failing'],
  ],
  needsStages: true,
  async run(lab, args, _passthrough, options) {
    const [ref, ...extra] = args;
    if (!ref || extra.length > 0) throw new UsageError('usage: lab restore <stage> | <machine>@<stage>');
    const { restore } = await import('../../engine/restore.js');
    show(options, await restore(lab, ref, { waitForLock: options.wait }), printRestore);
    return 0;
  },
} satisfies Verb;
