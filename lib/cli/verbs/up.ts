import { printForecast, printIdempotence, printUp } from '../format.js';
import { rendererFor, upProgress } from '../progress.js';
import { show, type Verb } from '../verb.js';

export default {
  name: 'up',
  help: [
    ['up [machine...]', 'build what changed (one snapshot per stage) and boot the lab'],
    ['--no-cache', 'rebuild every stage'],
    ['--from <stage>', 'rebuild from this stage on (<stage>, <machine>@<stage>, or a controller stage)'],
    ['--until <stage>', 'stop after this stage'],
    ['--wait', 'wait for another lab command to finish instead of failing'],
    ['--dry-run', 'say what it would build, boot, reboot or remove, and why (which key changed); do nothing'],
    ['--idempotence', 'then apply every stage again on its own result and report what that changed (exit 1 if anything)'],
    ['--idempotence <play...>', 'only these controller stages, applied again on the lab at their snapshots'],
  ],
  needsStages: true,
  async run(lab, args, _passthrough, options) {
    const [{ up }, { parseStageRef }, { assertMachine }] = await Promise.all([import('../../engine/up.js'), import('../../plan/plan.js'), import('../../engine/machines.js')]);
    const plays = lab.loaded.controller.map((s) => s.name);
    const askedPlays = options.idempotence && args.length > 0 && args.every((name) => plays.includes(name));
    if (!askedPlays) for (const name of args) assertMachine(lab, name);
    const onProgress = await upProgress(rendererFor(options.json));
    if (options.idempotence) {
      const { checkIdempotence } = await import('../../engine/idempotence.js');
      const report = await checkIdempotence(lab, askedPlays ? { plays: args, onProgress } : { machines: args, onProgress });
      show(options, report, printIdempotence);
      return report.idempotent ? 0 : 1;
    }
    const controller = { controller: lab.loaded.controller.map((s) => s.name) };
    const plan = {
      only: args,
      noCache: options.noCache,
      from: options.from ? parseStageRef(options.from, lab.loaded.machines, controller) : undefined,
      until: options.until ? parseStageRef(options.until, lab.loaded.machines, controller) : undefined,
    };
    if (options.dryRun) {
      const { dryRun } = await import('../../engine/dry-run.js');
      show(options, dryRun(lab, plan), printForecast);
      return 0;
    }
    const report = await up(lab, {
      plan,
      waitForLock: options.wait,
      onProgress,
    });
    show(options, report, printUp);
    return 0;
  },
} satisfies Verb;
