import path from 'node:path';
import { HostError, UsageError } from '../../errors.js';
import type { Verb } from '../verb.js';

export default {
  name: 'repl',
  help: [
    [
      'repl',
      'a JavaScript REPL on the running lab, with top-level await: lab, each machine by its name',
      "(web, webSilicon or machines['web-silicon']), expect, restore, checkpoint; history in the lab's state;",
      'a script on stdin runs line by line (exit 1 at the first line that fails)',
    ],
  ],
  needsStages: true,
  async run(lab, args) {
    if (args.length > 0) throw new UsageError('usage: lab repl (type, or pipe a script: echo "await web.succeed(\'hostname\')" | lab repl)');
    const [{ isRunning }, { readState }] = await Promise.all([import('../../engine/machines.js'), import('../../state/state.js')]);
    const state = readState(lab.dirs.stateFile);
    const names = lab.config.machines.map((m) => m.name);
    const stopped = names.filter((name) => !isRunning(state, name));
    if (stopped.length === names.length) throw new HostError(`lab ${lab.config.name} is not up: none of its machines runs`, 'bring it up with: lab up');
    // The REPL's machinery (node:repl, vitest's expect) is loaded by this verb alone.
    // vitest first: in the CLI's bundle, the harness's own import of it is the one made here (cli/bundle-loader.ts).
    const { expect } = await import('vitest');
    const [{ ScenarioLab }, { machineVariables, runRepl }] = await Promise.all([import('../../scenario/harness.js'), import('../repl.js')]);
    // Outside a test file: vitest's expect asks its worker for the test's path, and there is none.
    expect.setState({ testPath: undefined });
    // Its user is at the lab: restores, checkpoints and reboots are theirs to make.
    const scenario = new ScenarioLab(lab, () => undefined);
    const machines = Object.fromEntries(names.map((name) => [name, scenario.machine(name)]));
    const context: Record<string, unknown> = {
      lab: scenario,
      machines,
      expect,
      restore: (ref: string) => scenario.restore(ref),
      checkpoint: (name: string) => scenario.checkpoint(name),
    };
    const variables = machineVariables(names, Object.keys(context));
    for (const [variable, machine] of variables) context[variable] = machines[machine];
    const shown = names.map((name) => {
      const variable = [...variables].find(([, machine]) => machine === name)?.[0];
      return variable === name ? name : variable ? `${variable} (${name})` : `machines['${name}']`;
    });
    const banner = [
      `lab ${lab.config.name}: ${shown.join(', ')}${stopped.length ? `; not running: ${stopped.join(', ')}` : ''}`,
      "also lab, machines, expect, restore('<stage>'), checkpoint('<name>'); await web.succeed('hostname'); .exit leaves",
    ].join('\n');
    return runRepl({ context, historyFile: path.join(lab.dirs.state, 'repl_history'), banner });
  },
} satisfies Verb;
