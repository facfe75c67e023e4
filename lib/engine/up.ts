import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { isContainer } from '../config/topology.js';
import { disklessOn } from '../config/diskless.js';
import { currentBase, ensureBaseImage, imagePaths } from '../image/base.js';
import type { ImageSourceKind } from '../image/image.js';
import type { Plan, PlanOptions } from '../plan/plan.js';
import { raiseLimits } from '../host/limits.js';
import { type LabState, writeState } from '../state/state.js';
import type { Lab } from './lab-types.js';
import { type MachineReport, runMachineJobs } from './machine-job.js';
import { stopMachine } from './machines.js';
import { knownMachines } from './dry-run.js';
import { pruneImages } from './image.js';
import { planFor } from './planning.js';
import { type ControllerStageReport, prepareControllerKey, runControllerStages } from './controller.js';
import type { UpEvent, UpProgress } from './progress.js';
import { withSession } from './session.js';
import { assertPoolHasRoom } from './space.js';
import { prunable, removeSnapshot } from './snapshots.js';
import { bootVms } from './vm-boot.js';

export interface UpOptions {
  plan?: PlanOptions;
  /** Told what lab up does as it does it; without it, nothing is shown. */
  onProgress?: UpProgress;
  waitForLock?: boolean;
}

export interface UpReport {
  /** Where the base image came from this time. */
  baseImage: 'pool' | 'cache' | ImageSourceKind;
  durationMs: number;
  machines: MachineReport[];
  /** Machines the config no longer names: stopped, their roots removed. */
  removed: string[];
  prunedSnapshots: number;
  /** Host kernel limits raised for the lab's size, one line each. */
  hostLimits: string[];
  /** What interrupted commands had left in the pool, finished or undone first. */
  recovered: string[];
  /** The lab-wide stages run from the controller, after the machines' own. */
  controller: ControllerStageReport[];
}

/**
 * Brings the lab up: host preparation, base image, then every machine's stages (cached
 * ones come from their snapshots), a read-only snapshot after each built stage, boot in
 * dependency order, and the checks of the stages built this time.
 */
export async function up(lab: Lab, options: UpOptions = {}): Promise<UpReport> {
  const started = Date.now();
  const progress = options.onProgress ?? (() => undefined);
  return withSession(lab, 'up', { action: 'up', image: true, waitForLock: options.waitForLock }, async ({ state, recovered }) => {
    await prepareControllerKey(lab);
    assertPoolHasRoom(lab); // a full pool fails every stage and boots machines that cannot write
    await lab.network.setup(state);
    await lab.packageProxy.start(state);
    writeState(lab.dirs.stateFile, state);
    // What dozens of systemd instances need from the kernel, raised before any of them boots.
    const hostLimits = raiseLimits(lab.config.machines.length);
    const base = await prepareBaseImage(lab, progress);
    // A vm asked for brings the containers it depends on; vms boot once every container is up. A
    // machine asked for brings the diskless machines that boot from its root (a new root stops them).
    const only = options.plan?.only ?? [];
    const vms = lab.loaded.machines.filter((m) => !isContainer(m.config) && (only.length === 0 || only.includes(m.name)));
    const containersOnly = only.flatMap((name) => vms.find((vm) => vm.name === name)?.dependsOn ?? [name, ...disklessOn(lab.config, name)]);
    const onlyVms = only.length > 0 && containersOnly.length === 0;
    const plan = planFor(lab, { ...options.plan, only: containersOnly });
    const removed = only.length === 0 ? await removeUnconfigured(lab, state) : [];
    const reports = onlyVms ? [] : await runMachineJobs(lab, state, plan, base.path, progress);
    // Plays span the lab: run only when the whole lab is brought up.
    const controller = only.length === 0 ? await runController(lab, state, plan, progress, reports) : [];
    reports.push(...(await bootVms(lab, state, vms, reports)));
    const pruned = prunable(lab, lab.config.storage.keepSnapshots);
    for (const snapshot of pruned) await removeSnapshot(lab, snapshot);
    await pruneImages(lab); // an upgraded-from base goes once no snapshot is built on it
    return { baseImage: base.source, durationMs: Date.now() - started, machines: reports, removed, prunedSnapshots: pruned.length, hostLimits, recovered, controller };
  });
}

/**
 * The machines the config no longer names (a root in the pool, or an entry in the state): stopped
 * and their roots removed; their snapshots go as any old snapshot does.
 */
async function removeUnconfigured(lab: Lab, state: LabState): Promise<string[]> {
  const configured = new Set(lab.config.machines.map((m) => m.name));
  const gone = knownMachines(lab, state).filter((name) => !configured.has(name));
  for (const name of gone) {
    await stopMachine(lab, state, name, { hard: true });
    await lab.storage.remove(lab.dirs.machineRoot(name));
    delete state.machines[name];
    writeState(lab.dirs.stateFile, state);
  }
  return gone;
}

/** The base image, its build's phases told as progress and its whole output kept in the image log. */
async function prepareBaseImage(lab: Lab, progress: UpProgress): Promise<{ path: string; source: UpReport['baseImage'] }> {
  const upgraded = currentBase(lab);
  if (existsSync(upgraded.path)) return { path: upgraded.path, source: 'pool' };
  const paths = imagePaths(lab.config.cacheDir, lab.storage, lab.image);
  writeFileSync(lab.dirs.imageLog, `base image ${lab.image.key}: ${lab.image.describe()}\n`);
  progress({ kind: 'image-start', source: lab.image.source, log: lab.dirs.imageLog });
  return progressTask(
    progress,
    () =>
      ensureBaseImage(lab.image, paths, lab.storage, lab.config.cacheDir, (line) => {
        appendFileSync(lab.dirs.imageLog, `${line}\n`);
        if (!lab.image.isDetail?.(line)) progress({ kind: 'image', line });
      }),
    ({ result, error }) => ({ kind: 'image-end', from: result?.source, error }),
  );
}

/** The controller stages, as one task of the progress; machines rebooted by them count as booted (vms restart after). */
async function runController(lab: Lab, state: LabState, plan: Plan, progress: UpProgress, machines: MachineReport[]): Promise<ControllerStageReport[]> {
  if (plan.controller.length === 0) return [];
  const pending = plan.controller.filter((s) => s.action === 'build').map((s) => s.name);
  if (pending.length === 0) return runControllerStages(lab, state, plan, () => undefined); // every one cached: their reports only
  progress({ kind: 'controller-start', stages: pending });
  const reports = await progressTask(
    progress,
    () => runControllerStages(lab, state, plan, (line) => progress({ kind: 'controller', line })),
    ({ error }) => ({ kind: 'controller-end', stages: pending, error }),
  );
  for (const machine of machines) machine.booted = true;
  return reports;
}

/** Runs a task of the progress: its end is told, with its error if it fails, and awaited before it returns or throws. */
async function progressTask<T>(progress: UpProgress, body: () => Promise<T>, end: (outcome: { result?: T; error?: unknown }) => UpEvent): Promise<T> {
  let result: T;
  try {
    result = await body();
  } catch (error) {
    await progress(end({ error }));
    throw error;
  }
  await progress(end({ result }));
  return result;
}
