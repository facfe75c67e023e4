import { UsageError } from '../../errors.js';
import { printCheckpoints, printCheckpointSaved } from '../format.js';
import { out, show, type Verb } from '../verb.js';

export default {
  name: 'checkpoint',
  help: [
    ['checkpoint save <name>', 'keep every machine as it is now (frozen for one moment), to restore later'],
    ['checkpoint list|delete', 'the checkpoints kept; delete <name> removes one'],
  ],
  needsStages: true,
  async run(lab, args, _passthrough, options) {
    const [verb, name, ...extra] = args;
    const usage = 'usage: lab checkpoint save <name> | list | delete <name>';
    if (extra.length > 0 || !verb || (verb === 'list') !== (name === undefined)) throw new UsageError(usage);
    const checkpoints = await import('../../engine/checkpoints.js');
    if (verb === 'save') show(options, await checkpoints.saveCheckpoint(lab, name!), printCheckpointSaved);
    else if (verb === 'list') show(options, checkpoints.listCheckpoints(lab), printCheckpoints);
    else if (verb === 'delete') {
      await checkpoints.deleteCheckpoint(lab, name!);
      if (!options.json) out(`checkpoint ${name} deleted`);
    } else throw new UsageError(usage);
    return 0;
  },
} satisfies Verb;
