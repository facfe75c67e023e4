import path from 'node:path';
import { HostError, Interrupted, UsageError } from '../errors.js';
import { interrupted, onInterrupt } from '../interrupt.js';
import { holdingLock } from '../state/lock.js';
import { isAlive } from '../state/process.js';
import { type Checkpoint, INTERNAL_PREFIX, deleteCheckpoint, listCheckpoints, readCheckpoint, saveCheckpoint } from './checkpoints.js';
import type { Lab } from './lab-types.js';
import { assertMachine } from './machines.js';
import { restoreCheckpointExactly, restoreStages } from './restore.js';
import { defaultScenariosDir, listScenarios, runScenarioFiles, selectScenarios } from './test.js';

/** One point of the lab's build: each machine named at the stage it is restored to. */
export interface BisectStep {
  label: string;
  stages: ReadonlyMap<string, string>;
}

/**
 * The points to search. For one machine, its stages. For the whole lab, the stage names in the
 * order the lab builds them (machines in dependency order), each point being the lab built up to
 * that stage: every machine at its last stage not later than it (at least its first). The lab's
 * controller stages come last, after every machine's own: each is a snapshot of every machine.
 */
export function bisectChain(own: readonly { name: string; stages: readonly string[] }[], machine?: string, controller: readonly string[] = []): BisectStep[] {
  const machines = own.map((m) => ({ name: m.name, stages: [...m.stages, ...controller] }));
  if (machine) {
    const stages = machines.find((m) => m.name === machine)!.stages;
    return stages.map((stage) => ({ label: `${machine}@${stage}`, stages: new Map([[machine, stage]]) }));
  }
  const order = [...new Set([...own.flatMap((m) => m.stages), ...controller])];
  return order.map((label, index) => ({
    label,
    stages: new Map(machines.map((m) => [m.name, m.stages.filter((s) => order.indexOf(s) <= index).at(-1) ?? m.stages[0]!])),
  }));
}

/** The ends of a bisect, given as `--good` and `--bad`: indexes into its points. */
export interface BisectEnds {
  first: number;
  last: number;
}

/**
 * The index of a point named as bisect knows them: a point's label (`web@proxy`, or a stage name
 * over the whole lab), a machine's stage by its name alone (`proxy` when bisecting web) or with its
 * machine (`web@proxy` over the whole lab), or a checkpoint whose machines are at that point's stages.
 * An unknown one, or a checkpoint at no point of the build, exits 2 naming `field`.
 */
export function bisectPoint(steps: readonly BisectStep[], point: string, field: string, checkpoint: (name: string) => Checkpoint | undefined): number {
  const [machine, stage] = point.split('@', 2) as [string, string | undefined];
  const named = (step: BisectStep) =>
    step.label === point ||
    // bisecting one machine: its stage by name alone
    (stage === undefined && step.stages.size === 1 && step.label === `${[...step.stages.keys()][0]}@${point}`) ||
    // the whole lab: a stage with its machine
    (stage !== undefined && step.label === stage && step.stages.get(machine) === stage);
  const byName = steps.findIndex(named);
  if (byName >= 0) return byName;
  const saved = checkpoint(point);
  if (!saved) throw new UsageError(`${field}: '${point}' is no stage or checkpoint of this bisect (its points: ${steps.map((s) => s.label).join(', ')})`);
  const at = (name: string) => saved.machines.find((m) => m.name === name)?.rootStage;
  const byCheckpoint = steps.findIndex((step) => [...step.stages].every(([name, stageName]) => at(name) === stageName));
  if (byCheckpoint < 0) throw new UsageError(`${field}: checkpoint '${point}' is at no point of this bisect (its machines: ${saved.machines.map((m) => `${m.name}@${m.rootStage ?? '?'}`).join(' ')})`, 'save the checkpoint on a lab built up to a stage (lab up, or lab restore <stage>)');
  return byCheckpoint;
}

/** `--good` and `--bad` as the ends of the search, the first before the second (exit 2 otherwise); the whole chain without them. */
export function bisectEnds(steps: readonly BisectStep[], points: { good?: string; bad?: string }, checkpoint: (name: string) => Checkpoint | undefined): BisectEnds {
  const first = points.good === undefined ? 0 : bisectPoint(steps, points.good, '--good', checkpoint);
  const last = points.bad === undefined ? steps.length - 1 : bisectPoint(steps, points.bad, '--bad', checkpoint);
  if (first >= last) throw new UsageError(`--good ${steps[first]!.label} must come before --bad ${steps[last]!.label} in the build (points in order: ${steps.map((s) => s.label).join(', ')})`);
  return { first, last };
}

/**
 * Binary search for where a result changes between two points (all `count` without `ends`),
 * assuming it changes once: both ends first (the last is usually the lab as it is), then halves.
 * Returns each point evaluated and, when the ends differ, the first point with the last point's result.
 */
export async function bisectSearch(count: number, evaluate: (index: number) => Promise<boolean>, ends: BisectEnds = { first: 0, last: count - 1 }): Promise<{ results: Map<number, boolean>; boundary?: number }> {
  const results = new Map<number, boolean>();
  const at = async (index: number) => {
    if (!results.has(index)) results.set(index, await evaluate(index));
    return results.get(index)!;
  };
  const last = await at(ends.last);
  if (ends.first === ends.last || (await at(ends.first)) === last) return { results };
  let low = ends.first;
  let high = ends.last;
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if ((await at(middle)) === last) high = middle;
    else low = middle;
  }
  return { results, boundary: high };
}

export interface BisectReport {
  scenario: string;
  machine?: string;
  steps: { label: string; outcome: 'passed' | 'failed' | 'not run'; restoreMs?: number; scenarioMs?: number }[];
  /** Where the result changes: the last point with the first result, and the first with the other. */
  boundary?: { until: string; from: string; before: 'passed' | 'failed'; after: 'passed' | 'failed' };
  /** Scenario runs made, of the points there are. */
  runs: number;
  durationMs: number;
  /** The time of putting the lab back as it was, included in durationMs. */
  putBackMs: number;
}

/**
 * `lab bisect <scenario> [machine] [--good <point>] [--bad <point>]`: runs the scenario against the
 * lab restored to points of its build between the two (the whole chain by default), as few as a
 * binary search needs, and reports where its result changes. The lab is put back as it was at the
 * end (a checkpoint of lab's own), also when the bisect fails or is interrupted.
 */
export async function bisect(
  lab: Lab,
  scenario: string,
  machine: string | undefined,
  options: { scenariosDir?: string; progress?: (line: string) => void; good?: string; bad?: string } = {},
): Promise<BisectReport> {
  const started = Date.now();
  const scenariosDir = path.resolve(options.scenariosDir ?? defaultScenariosDir(lab));
  const [file] = selectScenarios(listScenarios(scenariosDir), [scenario]); // unknown: exit 2, naming the valid ones
  if (machine) assertMachine(lab, machine);
  if (machine && lab.loaded.machines.find((m) => m.name === machine)!.stages.length === 0) throw new UsageError(`${machine} is ${lab.backendOf(machine).what}: it has no stages to bisect`);
  const steps = bisectChain(
    lab.loaded.machines.filter((m) => m.stages.length > 0).map((m) => ({ name: m.name, stages: m.stages.map((s) => s.name) })),
    machine,
    lab.loaded.controller.map((s) => s.name),
  );
  const ends = bisectEnds(steps, options, (name) => readCheckpoint(lab, name));
  return holdingLock(lab.dirs.lockFile, `bisect ${scenario}`, async () => {
    const wayBack = `${BISECT_CHECKPOINT_PREFIX}${process.pid}`;
    await saveCheckpoint(lab, wayBack, { internal: true });
    let putBackMs = 0;
    const touched = new Set<string>();
    // Registered until it has run whole: a signal during the put-back (which ends its commands)
    // runs it again from the interruption's cleanups, after the attempt in flight has settled.
    let putBackDone = false;
    let inFlight: Promise<void> | undefined;
    const putBack = async () => {
      await inFlight?.catch(() => undefined);
      if (putBackDone) return;
      inFlight = (async () => {
        const from = Date.now();
        if (touched.size > 0) await restoreCheckpointExactly(lab, wayBack, touched);
        await deleteCheckpoint(lab, wayBack);
        putBackMs = Date.now() - from;
        putBackDone = true;
      })();
      return inFlight;
    };
    const unregister = onInterrupt(putBack);
    const timings = new Map<number, { restoreMs: number; scenarioMs: number }>();
    let search: Awaited<ReturnType<typeof bisectSearch>>;
    try {
      search = await bisectSearch(steps.length, async (index) => {
        // Interrupted, the put-back runs from the cleanups: no next step may restore meanwhile.
        if (interrupted()) throw new Interrupted('bisect interrupted');
        const restoreStarted = Date.now();
        for (const machine of steps[index]!.stages.keys()) touched.add(machine);
        await restoreStages(lab, steps[index]!.stages, { waitForLock: true });
        const scenarioStarted = Date.now();
        const collector = await runScenarioFiles(lab, [file!], scenariosDir, { renderer: 'silent', group: 'bisect' });
        if (interrupted()) throw new Interrupted('bisect interrupted'); // its result is of a lab being put back
        const timing = { restoreMs: scenarioStarted - restoreStarted, scenarioMs: Date.now() - scenarioStarted };
        timings.set(index, timing);
        options.progress?.(`${steps[index]!.label}: ${collector.failed ? 'failed' : 'passed'} (restore ${timing.restoreMs} ms, scenario ${timing.scenarioMs} ms)`);
        return !collector.failed;
      }, ends);
    } finally {
      // Interrupted, the cleanup registered puts the lab back, after every command is ended.
      if (!interrupted()) {
        await putBack();
        unregister();
      }
    }
    const outcome = (passed: boolean) => (passed ? 'passed' : 'failed');
    const { results, boundary } = search;
    return {
      scenario,
      machine,
      steps: steps.map((step, index) => ({
        label: step.label,
        outcome: results.has(index) ? outcome(results.get(index)!) : 'not run',
        ...timings.get(index),
      })),
      boundary:
        boundary === undefined
          ? undefined
          : { until: steps[boundary - 1]!.label, from: steps[boundary]!.label, before: outcome(!results.get(boundary)!), after: outcome(results.get(boundary)!) },
      runs: results.size,
      durationMs: Date.now() - started,
      putBackMs,
    };
  });
}

const BISECT_CHECKPOINT_PREFIX = `${INTERNAL_PREFIX}bisect-`;

/**
 * Puts the lab back as it was before a bisect that was killed (kill -9: no cleanup of its own ran):
 * its checkpoint is the record of how it was, and names the bisect's process. Every machine goes
 * back exactly (which ones the bisect had touched died with it). A command that cannot take the
 * lab's lock now leaves it to the next one.
 */
export async function finishAbandonedBisects(lab: Lab): Promise<void> {
  for (const checkpoint of listCheckpoints(lab)) {
    if (!checkpoint.name.startsWith(BISECT_CHECKPOINT_PREFIX) || isAlive(checkpoint.owner)) continue;
    try {
      await restoreCheckpointExactly(lab, checkpoint.name, undefined, { waitForLock: false });
      await deleteCheckpoint(lab, checkpoint.name);
      process.stderr.write(`lab: put the lab back as it was before an interrupted bisect (its checkpoint ${checkpoint.name})\n`);
    } catch (error) {
      if (!(error instanceof HostError && /is busy/.test(error.message))) throw error;
    }
  }
}
