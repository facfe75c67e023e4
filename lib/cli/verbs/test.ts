import path from 'node:path';
import { UsageError } from '../../errors.js';
import { rendererFor, upProgress } from '../progress.js';
import { json, out, type Verb } from '../verb.js';

export default {
  name: 'test',
  help: [
    ['test [scenario...]', 'bring the lab up, run the scenarios, write reports (reports/<run>/, reports/latest)'],
    ['--scenarios <dir>', 'where scenarios are (default: the ones shipped with lab)'],
    ['--reports <dir>', 'where reports go (default: ./reports)'],
    ['--serial', 'one scenario at a time (default: read-only ones in parallel)'],
    ['--verbose', 'print every test as it ends'],
    ['--capture', 'record each network (tcpdump) while each scenario runs; keep the pcaps of failing ones'],
    ['--debug', 'pause at each failure with the lab as the test left it; Enter carries on (needs a terminal)'],
    ['--watch', 'then again at every edit: rebuild what changed, run the scenarios it touches; one line a cycle (Ctrl-C ends)'],
    ['--shard <i/n>', 'only the i-th of n shares of the scenario files (each runner its own share, the same split everywhere)'],
    ['--shard-durations <run>', 'split them by the durations in an earlier run\'s report (its results.json, run or reports directory)'],
  ],
  needsStages: true,
  async run(lab, args, _passthrough, options) {
    if (options.watch) {
      const refused = (['json', 'capture', 'debug', 'shard'] as const).find((o) => options[o]);
      if (refused) throw new UsageError(`--watch and --${refused} do not go together`, 'watch mode prints one line a cycle and writes no report');
      const [{ watchTests }, { openLab }] = await Promise.all([import('../../engine/watch.js'), import('../../engine/lab.js')]);
      const reopen = () => openLab({ file: options.config, name: options.name, runtime: options.runtime });
      return watchTests(lab, reopen, { scenarios: args, scenariosDir: options.scenarios, serial: options.serial, print: out });
    }
    if (options.debug && !(process.stdin.isTTY && process.stderr.isTTY)) throw new UsageError('--debug needs a terminal: it waits for Enter at each failure', 'in CI, read the report of the failing run instead');
    if (options.debug && options.json) throw new UsageError('--debug and --json do not go together');
    const labCommand = ['lab', ...(options.config ? ['--config', path.resolve(options.config)] : []), ...(options.name ? ['--name', options.name] : [])].join(' ');
    const [{ runTests }, { parseShard, durationsOf }, { readRun }] = await Promise.all([import('../../engine/test.js'), import('../../report/shard.js'), import('../../report/merge.js')]);
    if (options.shardDurations && !options.shard) throw new UsageError('--shard-durations: only with --shard i/n');
    const shard = options.shard ? { ...parseShard(options.shard), durations: options.shardDurations ? durationsOf(readRun(options.shardDurations, '--shard-durations').report) : undefined } : undefined;
    const renderer = rendererFor(options.json);
    const { report, dir } = await runTests(lab, {
      scenarios: args,
      scenariosDir: options.scenarios,
      reportsDir: path.resolve(options.reports ?? 'reports'),
      serial: options.serial,
      capture: options.capture,
      renderer,
      onProgress: await upProgress(renderer),
      verbose: options.verbose,
      debug: options.debug ? { labCommand } : undefined,
      shard,
    });
    if (options.json) json({ ...report, reportDir: dir });
    else out(`lab test${report.shard ? ` (shard ${report.shard}${report.scenarios.length === 0 ? ': no scenario in this share' : ''})` : ''}: ${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped in ${(report.durationMs / 1000).toFixed(1)}s\nreport: ${path.join(dir, 'report.html')}`);
    return report.outcome === 'passed' ? 0 : 1;
  },
} satisfies Verb;
