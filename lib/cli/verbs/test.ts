import path from 'node:path';
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
  ],
  needsStages: true,
  async run(lab, args, _passthrough, options) {
    const { runTests } = await import('../../engine/test.js');
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
    });
    if (options.json) json({ ...report, reportDir: dir });
    else out(`lab test: ${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped in ${(report.durationMs / 1000).toFixed(1)}s\nreport: ${path.join(dir, 'report.html')}`);
    return report.outcome === 'passed' ? 0 : 1;
  },
} satisfies Verb;
