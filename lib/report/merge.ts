import { cpSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { privateDir } from '../paths.js';
import { countTests, type ReportTopology, type RunReport, writeReports, writeRunDir } from './write.js';

export interface RunDir {
  report: RunReport;
  /** The run's directory (its results.json, topology and captures). */
  dir: string;
}

/**
 * A run's report, from its results.json, its run directory, or a reports directory (its `latest`).
 * `what` names the option or argument in the error when there is none.
 */
export function readRun(where: string, what: string): RunDir {
  const target = path.resolve(where);
  const candidates = existsSync(target) && statSync(target).isFile() ? [target] : [path.join(target, 'results.json'), path.join(target, 'latest', 'results.json')];
  const file = candidates.find((f) => existsSync(f));
  if (!file) throw new UsageError(`${what} ${where}: no results.json there (give a run's directory, or a reports directory with its latest run)`);
  try {
    const report = JSON.parse(readFileSync(file, 'utf8')) as RunReport;
    if (!Array.isArray(report.scenarios)) throw new Error('no scenarios');
    return { report, dir: path.dirname(file) };
  } catch (error) {
    throw new UsageError(`${what} ${where}: ${file} is not a lab test report (${(error as Error).message})`);
  }
}

/**
 * One report of several runs (the shards of one lab test): every scenario once, each test counted
 * once. A scenario found in two runs is refused: those are not the shards of one run (exit 2).
 */
export function mergeRuns(runs: readonly RunDir[]): RunReport {
  if (runs.length === 0) throw new UsageError('lab report merge: name the runs to merge (their directories)');
  const seen = new Map<string, string>();
  for (const run of runs) {
    for (const scenario of run.report.scenarios) {
      const other = seen.get(scenario.name);
      if (other) throw new UsageError(`scenario ${scenario.name} is in two of the runs: ${other} and ${run.dir}`, 'merge the shards of one run, each once');
      seen.set(scenario.name, run.dir);
    }
  }
  const reports = runs.map((r) => r.report);
  const scenarios = reports.flatMap((r) => r.scenarios).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const unhandled = reports.flatMap((r) => r.unhandled);
  const counts = countTests(scenarios, unhandled);
  const start = Math.min(...reports.map((r) => Date.parse(r.startedAt)));
  const end = Math.max(...reports.map((r) => Date.parse(r.startedAt) + r.durationMs));
  const startedAt = new Date(start).toISOString();
  return {
    id: `merged-${startedAt.replace(/[:.]/g, '-')}`,
    lab: [...new Set(reports.map((r) => r.lab))].join(', '),
    startedAt,
    durationMs: end - start, // the shards ran side by side: from the first start to the last end
    ...counts,
    outcome: counts.failed > 0 || reports.some((r) => r.outcome === 'failed') ? 'failed' : 'passed',
    scenarios,
    unhandled,
    timeline: reports.flatMap((r) => r.timeline),
    // Each run's machines are its own lab's, of the same names: told apart by the run they come from.
    machines: reports.flatMap((r, i) => r.machines.map((m) => ({ ...m, machine: runs.length > 1 ? `${m.machine}-run${i + 1}` : m.machine }))),
    mergedFrom: reports.map((r) => ({ id: r.id, lab: r.lab, ...(r.shard ? { shard: r.shard } : {}) })),
  };
}

/** The topology drawn in the first run that has it (the shards of one lab draw the same). */
export function topologyOf(runs: readonly RunDir[]): ReportTopology | undefined {
  const found = runs.find((r) => existsSync(path.join(r.dir, 'topology.svg')) && existsSync(path.join(r.dir, 'topology.mmd')));
  return found && { svg: readFileSync(path.join(found.dir, 'topology.svg'), 'utf8'), mermaid: readFileSync(path.join(found.dir, 'topology.mmd'), 'utf8') };
}

/**
 * `lab report merge <runs...> [-o dir]`: the merged report (results.json, JUnit, TAP, summary, HTML,
 * the failing scenarios' captures) into `output`, else into `<reportsDir>/<id>` with `latest`.
 */
export function writeMerge(inputs: readonly string[], options: { output?: string; reportsDir: string }): { report: RunReport; dir: string } {
  const runs = inputs.map((input) => readRun(input, 'lab report merge'));
  const report = mergeRuns(runs);
  const dir = options.output ? privateDir(path.resolve(options.output)) : privateDir(path.join(options.reportsDir, report.id));
  for (const run of runs) {
    for (const capture of run.report.scenarios.flatMap((s) => s.captures ?? [])) {
      mkdirSync(path.dirname(path.join(dir, capture)), { recursive: true });
      cpSync(path.join(run.dir, capture), path.join(dir, capture));
    }
  }
  const written = { topology: topologyOf(runs), junit: true };
  return { report, dir: options.output ? writeRunDir(dir, report, written) : writeReports(options.reportsDir, report, written) };
}
