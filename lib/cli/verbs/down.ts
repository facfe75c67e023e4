import { out, type Verb } from '../verb.js';

export default {
  name: 'down',
  help: [['down', 'stop the machines, keep everything']],
  needsStages: false,
  toleratesMissingPaths: true,
  async run(lab) {
    const { down } = await import('../../engine/lifecycle.js');
    const stopped = await down(lab);
    out(stopped.length ? `stopped ${stopped.join(', ')}` : 'no machine was running');
    return 0;
  },
} satisfies Verb;
