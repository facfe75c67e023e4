import { printSnapshots } from '../format.js';
import { show, type Verb } from '../verb.js';

export default {
  name: 'snapshots',
  help: [['snapshots', 'every stage snapshot: created, cache key, space it holds']],
  needsStages: true,
  async run(lab, _args, _passthrough, options) {
    const { snapshotsReport } = await import('../../engine/snapshots.js');
    show(options, await snapshotsReport(lab), printSnapshots);
    return 0;
  },
} satisfies Verb;
