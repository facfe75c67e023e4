import { UsageError } from '../../errors.js';
import { json, out, type Verb } from '../verb.js';

export default {
  name: 'init',
  help: [['init [dir]', 'a new team lab in dir (default: here; new or empty): package.json, lab.config.yaml,', 'a stage, a scenario, tsconfig.json, .gitignore (--name: the lab\'s name, default the directory\'s)']],
  opensLab: false,
  async run(args, options) {
    if (args.length > 1) throw new UsageError('usage: lab init [dir] [--name <lab>]');
    const { initLab } = await import('../../engine/init.js');
    const report = initLab(args[0] ?? '.', { name: options.name });
    if (options.json) json(report);
    else {
      out(`lab init: the lab ${report.name} in ${report.dir}: ${report.files.join(', ')}`);
      out(`next: ${args[0] ? `cd ${args[0]} && ` : ''}npm install && npx lab validate && sudo npx lab up && sudo npx lab test`);
    }
    return 0;
  },
} satisfies Verb;
