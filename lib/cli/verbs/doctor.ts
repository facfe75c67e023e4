import { printDoctor } from '../format.js';
import { show, type Verb } from '../verb.js';

export default {
  name: 'doctor',
  help: [['doctor', 'prerequisites, the modes in use and why, leftovers of labs']],
  needsStages: false,
  toleratesMissingPaths: true,
  async run(lab, _args, _passthrough, options) {
    const { doctor } = await import('../../engine/doctor.js');
    show(options, await doctor(lab), printDoctor);
    return 0;
  },
} satisfies Verb;
