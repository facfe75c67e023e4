import { existsSync, readdirSync, rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import path from 'node:path';
import { InfraError, unknownName, UsageError } from '../errors.js';
import { packageRoot, privateDir } from '../paths.js';
import { ResultCollector, type ScenarioResult, scenarioName } from '../report/collector.js';
import { assignShards, type Shard } from '../report/shard.js';
import { assertHostReady, SETPRIV_TOOL } from '../host/prereq.js';
import { captureDirOf } from '../scenario/capture.js';
import { countTests, type MachineDiagnostics, type RunReport, type TimelineEntry, writeReports } from '../report/write.js';
import { ENV_CAPTURE_DIR, ENV_CONFIG, ENV_DEBUG_DIR, ENV_GROUP, ENV_NAME, ENV_SCENARIOS_DIR, EXCLUSIVE_DIR } from '../scenario/environment.js';
import { PAUSE_LIMIT_MS, PauseDesk } from '../scenario/pause.js';
import { onInterrupt } from '../interrupt.js';
import { holdingLock } from '../state/lock.js';
import { readState } from '../state/state.js';
import type { Lab } from './lab-types.js';
import type { Renderer, UpProgress } from './progress.js';
import { up, type UpReport } from './up.js';

const SCENARIO_FILE = /\.test\.[cm]?[jt]s$/;
const SCENARIO_TIMEOUT_MS = 120_000;
const JOURNAL_LINES = 200;
const PARALLEL_WORKERS = 4;

export interface TestOptions {
  scenarios: string[];
  /** Record every network while each scenario runs; keep the pcaps of failing ones in the report. */
  capture?: boolean;
  scenariosDir?: string;
  reportsDir: string;
  /** Run every scenario one after the other (to compare with the parallel default). */
  serial?: boolean;
  /** How vitest reports the scenarios ('silent': not at all). */
  renderer: Renderer;
  /** Told what its lab up does, as it does it. */
  onProgress?: UpProgress;
  /** Print each test as it finishes. */
  verbose: boolean;
  /** lab test --debug: pause at each failure with the lab as the test left it, and tell how to get in with this command (`lab --config x`). */
  debug?: { labCommand: string };
  /** Run one share of the scenarios (--shard i/n), split by the durations of an earlier run when given. */
  shard?: Shard & { durations?: ReadonlyMap<string, number> };
}

export interface TestRun {
  report: RunReport;
  dir: string;
}

/** A team's `scenarios/` beside its config file, else the ones shipped with lab. */
export function defaultScenariosDir(lab: Pick<Lab, 'configFile'>): string {
  const beside = lab.configFile ? path.join(path.dirname(lab.configFile), 'scenarios') : undefined;
  return beside && existsSync(beside) ? beside : path.join(packageRoot, 'scenarios');
}

/** The scenario files: `<name>.test.ts` in the directory, and exclusive ones under exclusive/. */
export function listScenarios(dir: string): Map<string, string> {
  const found = new Map<string, string>();
  if (!existsSync(dir)) return found;
  for (const sub of ['', EXCLUSIVE_DIR]) {
    const folder = path.join(dir, sub);
    if (!existsSync(folder)) continue;
    for (const entry of readdirSync(folder).filter((e) => SCENARIO_FILE.test(e)).sort()) {
      const file = path.join(folder, entry);
      found.set(scenarioName(file, dir), file);
    }
  }
  return found;
}

/** Picks scenarios by name (`proxy` or `exclusive/restore`, or the bare `restore`); exit 2 on an unknown one. */
export function selectScenarios(all: Map<string, string>, names: string[]): string[] {
  if (names.length === 0) return [...all.values()];
  return names.map((name) => {
    const file = all.get(name) ?? all.get(`${EXCLUSIVE_DIR}/${name}`);
    if (!file) throw unknownName('scenario', name, [...all.keys()]);
    return file;
  });
}

function stageTimeline(report: UpReport): TimelineEntry[] {
  return report.machines.flatMap((m) => [
    ...m.stages
      .filter((s) => s.startedAt !== undefined)
      .map((s): TimelineEntry => ({ kind: 'stage', name: `${m.name}@${s.name}`, startedAt: s.startedAt!, durationMs: s.durationMs ?? 0, outcome: 'built' })),
    ...(m.bootStartedAt !== undefined ? [{ kind: 'boot' as const, name: m.name, startedAt: m.bootStartedAt, durationMs: m.bootMs ?? 0, outcome: 'passed' as const }] : []),
  ]).concat(
    // A controller stage spans the lab: one bar, with its snapshots and the lab's boot after it.
    report.controller
      .filter((s) => s.startedAt !== undefined)
      .map((s): TimelineEntry => ({ kind: 'controller', name: s.name, startedAt: s.startedAt!, durationMs: s.durationMs ?? 0, outcome: 'built' })),
  );
}

/** Each machine's failed units and journal tail, for a failing run's report; a vm's is its console's, running or not (how it went down). */
export async function diagnostics(lab: Lab): Promise<MachineDiagnostics[]> {
  const state = readState(lab.dirs.stateFile);
  const out: MachineDiagnostics[] = [];
  for (const machine of lab.config.machines) {
    const process = state.machines[machine.name]?.process;
    out.push({ machine: machine.name, ...(await lab.backendOf(machine.name).diagnostics(lab, machine.name, process, JOURNAL_LINES)) });
  }
  return out;
}

/**
 * `lab test`: brings the lab up (building what is missing), runs the scenarios with vitest
 * (read-only ones in parallel, then the exclusive ones one at a time), and writes the reports.
 */
export async function runTests(lab: Lab, options: TestOptions): Promise<TestRun> {
  const scenariosDir = path.resolve(options.scenariosDir ?? defaultScenariosDir(lab));
  const all = listScenarios(scenariosDir);
  if (all.size === 0) throw new UsageError(`no scenario (*.test.ts) in ${scenariosDir}`);
  const selected = selectScenarios(all, options.scenarios);
  const files = options.shard ? shareOf(selected, scenariosDir, options.shard) : selected;

  const started = new Date();
  const id = started.toISOString().replace(/[:.]/g, '-');
  if (files.length === 0) return emptyShare(lab, options, started, id);
  const runDir = path.join(options.reportsDir, id);
  // The lock is held for the whole run, so that nothing changes the machines under the scenarios;
  // this run's own `lab up` and its exclusive scenarios' restores take it through ENV_LOCK_HOLDER.
  if (options.capture) assertHostReady([TCPDUMP_TOOL, SETPRIV_TOOL], 'test --capture');
  return holdingLock(lab.dirs.lockFile, 'test', () => runHoldingLock(lab, options, scenariosDir, files, started, id, runDir));
}

async function runHoldingLock(lab: Lab, options: TestOptions, scenariosDir: string, files: string[], started: Date, id: string, runDir: string): Promise<TestRun> {
  const upReport = await up(lab, { onProgress: options.onProgress, waitForLock: true });

  const captureRoot = path.join(runDir, 'captures');
  // Closed before anything is written in it: captures and vitest's report come first, from others.
  privateDir(runDir);
  const pauseDir = options.debug ? privateDir(path.join(lab.dirs.state, 'pauses', id)) : undefined;
  const desk = pauseDir ? new PauseDesk(pauseDir, options.debug!.labCommand) : undefined;
  const collector = await runScenarioFiles(lab, files, scenariosDir, {
    ...options,
    // Paused at a failure, the lab stays as that test left it: no other scenario runs meanwhile.
    serial: options.serial || pauseDir !== undefined,
    pauseDir,
    junitFile: path.join(runDir, 'junit.xml'),
    env: {
      ...(options.capture ? { [ENV_CAPTURE_DIR]: captureRoot, [ENV_SCENARIOS_DIR]: scenariosDir } : {}),
      ...(pauseDir ? { [ENV_DEBUG_DIR]: pauseDir } : {}),
    },
  }).finally(() => {
    desk?.close();
    if (pauseDir) rmSync(pauseDir, { recursive: true, force: true });
  });
  if (options.capture) attachCaptures(collector.scenarios, captureRoot, runDir);
  // Each test undoes its own link faults; a scenario worker that died could not.
  await lab.faults.clearAll();

  const counts = countTests(collector.scenarios, collector.unhandled);
  const failed = collector.failed || counts.failed > 0;
  const report: RunReport = {
    id,
    lab: lab.config.name,
    ...shardOf(options),
    startedAt: started.toISOString(),
    durationMs: Date.now() - started.getTime(),
    ...counts,
    outcome: failed ? 'failed' : 'passed',
    scenarios: collector.scenarios,
    unhandled: collector.unhandled,
    timeline: [
      ...stageTimeline(upReport),
      ...collector.scenarios.map((s): TimelineEntry => ({ kind: 'scenario', name: s.name, startedAt: s.startedAt, durationMs: s.durationMs, outcome: s.outcome })),
    ],
    // Failing runs keep each machine's failed units and journal tail.
    machines: failed ? await diagnostics(lab) : [],
  };
  const { toMermaid, toSvg } = await import('../report/graph.js');
  return { report, dir: writeReports(options.reportsDir, report, { topology: { svg: toSvg(lab.topology), mermaid: toMermaid(lab.topology) } }) };
}

/** The scenario files of one share, split by their names (the same on every runner). */
function shareOf(files: readonly string[], scenariosDir: string, shard: NonNullable<TestOptions['shard']>): string[] {
  const byName = new Map(files.map((file) => [scenarioName(file, scenariosDir), file]));
  return assignShards([...byName.keys()], shard.count, shard.durations)[shard.index - 1]!.map((name) => byName.get(name)!);
}

const shardOf = (options: TestOptions) => (options.shard ? { shard: `${options.shard.index}/${options.shard.count}` } : {});

/** A share with no scenario (more shards than scenarios): its report says so, and the lab is not brought up for nothing. */
function emptyShare(lab: Lab, options: TestOptions, started: Date, id: string): TestRun {
  const report: RunReport = { id, lab: lab.config.name, ...shardOf(options), startedAt: started.toISOString(), durationMs: 0, passed: 0, failed: 0, skipped: 0, outcome: 'passed', scenarios: [], unhandled: [], timeline: [], machines: [] };
  return { report, dir: writeReports(options.reportsDir, report) };
}

const TCPDUMP_TOOL = { command: 'tcpdump', debianPackage: 'tcpdump', why: 'records the networks for lab test --capture' };

/**
 * Each failing scenario's pcaps, named in its result (relative to the run's directory); a passing
 * scenario's are deleted (its worker does it; this also covers a worker that could not).
 */
function attachCaptures(scenarios: ScenarioResult[], captureRoot: string, runDir: string): void {
  for (const scenario of scenarios) {
    const dir = captureDirOf(captureRoot, scenario.name);
    if (!existsSync(dir)) continue;
    if (scenario.outcome !== 'failed') rmSync(dir, { recursive: true, force: true });
    else scenario.captures = readdirSync(dir).map((file) => path.relative(runDir, path.join(dir, file)));
  }
  if (existsSync(captureRoot) && readdirSync(captureRoot).length === 0) rmSync(captureRoot, { recursive: true });
}

export interface ScenarioRunOptions {
  /** More environment for the scenario workers. */
  env?: Record<string, string>;
  serial?: boolean;
  renderer: Renderer;
  verbose?: boolean;
  junitFile?: string;
  /** The group scenarios see (LAB_TEST_GROUP): by default theirs (parallel or exclusive); bisect runs them as its own. */
  group?: string;
  /** lab test --debug: where failing tests ask to pause (their hooks may then last as long as the pause). */
  pauseDir?: string;
}

/**
 * The environment that turns vitest's colours off when its output goes to no terminal (a file, a
 * pipe): its colour library asks no isatty. A user's NO_COLOR or FORCE_COLOR is left to decide.
 */
export function colourEnv(env: NodeJS.ProcessEnv, renderer: Renderer): Record<string, string> {
  return renderer === 'default' || 'NO_COLOR' in env || 'FORCE_COLOR' in env ? {} : { NO_COLOR: '1' };
}

/** Runs scenario files with vitest against the lab as it is now (nothing is brought up), and returns what they did. */
export async function runScenarioFiles(lab: Lab, files: string[], scenariosDir: string, options: ScenarioRunOptions): Promise<ResultCollector> {
  process.env[ENV_CONFIG] = lab.configFile ?? '';
  process.env[ENV_NAME] = lab.config.name;
  // Before vitest is loaded: its colours are decided as it loads, in lab's process and its workers.
  Object.assign(process.env, colourEnv(process.env, options.renderer));
  const collector = new ResultCollector(scenariosDir);
  const { createVitest } = await import('vitest/node');
  // vitest answers SIGINT and SIGTERM by exiting 1 ms later (its logger listens as vitest is made,
  // its pool as it starts): lab's own handler (cli/main.ts) must end the commands and run the
  // cleanups (a bisect's put-back) first, so each listener vitest adds is taken off as soon as it is
  // added, while it is made and runs; an interrupt cancels the run before the cleanups.
  const refuseSignalListeners = (event: string | symbol, listener: (...args: unknown[]) => void) => {
    if (event === 'SIGINT' || event === 'SIGTERM') queueMicrotask(() => process.off(event, listener));
  };
  process.on('newListener', refuseSignalListeners);
  const exclusive = (file: string) => path.relative(scenariosDir, file).startsWith(`${EXCLUSIVE_DIR}/`);
  const group = (name: 'parallel' | 'exclusive', order: number, parallel: boolean) => ({
    test: {
      name,
      root: scenariosDir,
      include: name === 'exclusive' ? [`${EXCLUSIVE_DIR}/*.test.{ts,mts,js,mjs}`] : ['*.test.{ts,mts,js,mjs}'],
      fileParallelism: parallel,
      sequence: { groupOrder: order },
      env: { ...options.env, [ENV_GROUP]: options.group ?? name },
      testTimeout: SCENARIO_TIMEOUT_MS,
      // lab's own modules as node loads them, not through vite's transform one by one (seconds a run, outside node_modules).
      server: { deps: { external: [new RegExp(`^${packageRoot.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/dist/`)] } },
      hookTimeout: options.pauseDir ? PAUSE_LIMIT_MS : SCENARIO_TIMEOUT_MS * 2,
    },
  });
  try {
    const vitest = await createVitest(
      'test',
      {
        config: false,
        root: scenariosDir,
        watch: false,
        passWithNoTests: false,
        reporters: [collector, ...(options.renderer === 'silent' ? [] : [options.verbose ? 'verbose' : 'default']), ...(options.junitFile ? ['junit'] : [])],
        // Scenarios mostly wait on commands inside machines: more workers than cores pays (vitest's default is cores - 1).
        maxWorkers: options.serial ? 1 : PARALLEL_WORKERS,
        outputFile: options.junitFile ? { junit: options.junitFile } : undefined,
        projects: [group('parallel', 0, !options.serial), group('exclusive', 1, false)].filter((g) => files.some((f) => (g.test.name === 'exclusive') === exclusive(f))),
      },
      // Vite's cache in the lab's state, not node_modules/.vite in the team's scenarios directory.
      { server: { fs: { strict: false } }, cacheDir: path.join(lab.dirs.state, 'vite-cache') },
      // With --json, stdout is the report alone: vitest's own lines (such as the JUnit notice) go nowhere.
      options.renderer === 'silent' ? { stdout: new Writable({ write: (_chunk, _encoding, done) => done() }) } : {},
    );
    const unregister = onInterrupt(() => vitest.cancelCurrentRun('keyboard-input'));
    try {
      await vitest.start(files);
    } catch (error) {
      throw new InfraError(`vitest could not run the scenarios: ${(error as Error).message}`);
    } finally {
      unregister();
      await vitest.close();
    }
  } finally {
    process.off('newListener', refuseSignalListeners);
  }

  return collector;
}
