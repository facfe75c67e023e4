import { out, type Verb } from '../verb.js';

export default {
  name: 'destroy',
  help: [['destroy', 'remove everything the lab made on the host']],
  needsStages: false,
  toleratesMissingPaths: true,
  async run(lab) {
    const { destroy } = await import('../../engine/lifecycle.js');
    await destroy(lab);
    out(`lab ${lab.config.name} destroyed`);
    return 0;
  },
} satisfies Verb;
