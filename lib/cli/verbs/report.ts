import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../../errors.js';
import { json, out, type Verb } from '../verb.js';

export default {
  name: 'report',
  help: [
    ['report merge <run...>', 'one report (JUnit, TAP, JSON, HTML, summary) of several runs: the shards of a lab test'],
    ['-o, --output <dir>', 'write it there (default: reports/<id>, and reports/latest)'],
  ],
  needsStages: false,
  async run(_lab, args, _passthrough, options) {
    const [verb, ...runs] = args;
    if (verb !== 'merge' || runs.length === 0) throw new UsageError('usage: lab report merge <run dir or reports dir>... [-o <dir>]');
    if (options.output) {
      const target = path.resolve(options.output);
      if (!existsSync(path.dirname(target))) throw new UsageError(`-o, --output ${options.output}: the directory ${path.dirname(target)} does not exist`);
      if (existsSync(target) && !statSync(target).isDirectory()) throw new UsageError(`-o, --output ${options.output}: is a file, not a directory`);
    }
    const { writeMerge } = await import('../../report/merge.js');
    const { report, dir } = writeMerge(runs, { output: options.output, reportsDir: path.resolve(options.reports ?? 'reports') });
    if (options.json) json({ ...report, reportDir: dir });
    else out(`lab report merge: ${runs.length} runs, ${report.scenarios.length} scenarios: ${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped\nreport: ${path.join(dir, 'report.html')}`);
    return report.outcome === 'passed' ? 0 : 1;
  },
} satisfies Verb;
