import { UsageError } from '../../errors.js';
import { json, out, type Verb } from '../verb.js';

export default {
  name: 'validate',
  help: [
    ['validate', 'check the config, the stages (headers, fixtures, each file\'s syntax: sh -n, shellcheck,', 'ansible-playbook --syntax-check, puppet parser validate, where installed) and that the scenarios', 'compile: every problem, exit 2; as any user, touching nothing on the host'],
    ['--scenarios <dir>', 'the scenarios to type-check (default: scenarios/ beside the config)'],
  ],
  opensLab: false,
  async run(args, options) {
    if (args.length > 0) throw new UsageError('usage: lab validate [--config <file>] [--scenarios <dir>]');
    const { validate, validateSummary } = await import('../../engine/validate.js');
    const { formatProblem } = await import('../../validate/problem.js');
    const report = await validate({ file: options.config, name: options.name, runtime: options.runtime, scenariosDir: options.scenarios });
    if (options.json) json(report);
    else if (report.problems.length > 0) {
      for (const problem of report.problems) out(formatProblem(problem));
      process.stderr.write(`lab validate: ${report.problems.length} problem${report.problems.length === 1 ? '' : 's'}\n`);
    } else out(validateSummary(report));
    return report.problems.length > 0 ? 2 : 0;
  },
} satisfies Verb;
