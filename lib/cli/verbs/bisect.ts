import { UsageError } from '../../errors.js';
import { printBisect } from '../format.js';
import { show, type Verb } from '../verb.js';

export default {
  name: 'bisect',
  help: [
    ['bisect <scenario> [machine]', 'where along the build (a machine\'s stages, or the lab\'s) the scenario\'s result changes;', 'restores as few stages as a binary search needs, then puts the lab back as it was'],
    ['--good <point>', 'search from there (a stage, machine@stage, or a checkpoint): for a scenario that also fails at the first stage'],
    ['--bad <point>', 'search up to there (default: the last stage); --good must come before it'],
    ['--scenarios <dir>', 'where scenarios are'],
  ],
  needsStages: true,
  async run(lab, args, _passthrough, options) {
    const [scenario, machine, ...extra] = args;
    if (!scenario || extra.length > 0) throw new UsageError('usage: lab bisect <scenario> [machine] [--good <point>] [--bad <point>]');
    const { bisect } = await import('../../engine/bisect.js');
    const report = await bisect(lab, scenario, machine, { scenariosDir: options.scenarios, good: options.good, bad: options.bad, progress: options.json ? undefined : (line) => process.stderr.write(`bisect: ${line}\n`) });
    show(options, report, printBisect);
    return report.boundary ? 0 : 1;
  },
} satisfies Verb;
