import { UsageError } from '../../errors.js';
import { printImages } from '../format.js';
import { show, type Verb } from '../verb.js';

export default {
  name: 'image',
  help: [
    ['image export <file>', 'a root filesystem tarball of the base image (for image.source: tarball)'],
    ['--from <machine@stage>', 'of a stage snapshot instead'],
    ['image upgrade', 'clone the base, upgrade its packages, swap it in read-only (the next lab up rebuilds on it)'],
    ['image list', 'base images: key, current, size, machines whose snapshots use them'],
  ],
  needsStages: true,
  async run(lab, args, _passthrough, options) {
    const [verb, file, ...extra] = args;
    const usage = 'usage: lab image export <file.tar> [--from <machine>@<stage>] | upgrade | list';
    const images = await import('../../engine/image.js');
    if (verb === 'upgrade' || verb === 'list') {
      if (file !== undefined) throw new UsageError(usage);
      if (verb === 'list') {
        show(options, await images.listImages(lab), printImages);
        return 0;
      }
      show(options, await images.upgradeImage(lab), (upgraded) => upgraded.to
        ? `base image upgraded: ${upgraded.from} -> ${upgraded.to} in ${(upgraded.durationMs / 1000).toFixed(1)}s (log: ${upgraded.log})\nthe next lab up rebuilds every stage on it; lab restore still reaches the old snapshots until they are pruned`
        : `base image ${upgraded.from} is up to date: nothing to upgrade`);
      return 0;
    }
    if (verb !== 'export' || !file || extra.length > 0) throw new UsageError(usage);
    show(options, await images.exportImage(lab, file, options.from), (result) => `wrote ${result.file} (from ${result.source})`);
    return 0;
  },
} satisfies Verb;
