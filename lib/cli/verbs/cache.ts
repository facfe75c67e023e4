import { UsageError } from '../../errors.js';
import { printCacheKey, printPull, printPush } from '../format.js';
import { show, type Verb } from '../verb.js';

export default {
  name: 'cache',
  help: [
    ['cache key', 'one key for every snapshot the plan uses (an actions/cache key; --json: each snapshot\'s)'],
    ['cache push <dir>', 'every snapshot the plan uses into <dir>: btrfs send streams (tarballs on copy storage), a manifest'],
    ['cache pull <dir>', 'what the plan needs and the pool lacks, from <dir>; an object that fails its sha256 is refused'],
  ],
  needsStages: true,
  async run(lab, args, _passthrough, options) {
    const [verb, dir, ...extra] = args;
    const usage = 'usage: lab cache key | push <dir> | pull <dir>';
    if (extra.length > 0 || (verb === 'key') !== (dir === undefined)) throw new UsageError(usage);
    const cache = await import('../../engine/cache.js');
    if (verb === 'key') show(options, cache.cacheKey(lab), printCacheKey);
    else if (verb === 'push') show(options, await cache.pushCache(lab, dir!), printPush);
    else if (verb === 'pull') show(options, await cache.pullCache(lab, dir!), printPull);
    else throw new UsageError(usage);
    return 0;
  },
} satisfies Verb;
