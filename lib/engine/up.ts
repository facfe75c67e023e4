import { appendFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { LabError, StageError } from '../errors.js';
import { CommandError } from '../exec.js';
import { currentBase, ensureBaseImage, imagePaths } from '../image/base.js';
import type { ImageSourceKind } from '../image/image.js';
import { installPackages } from '../image/packages.js';
import type { MachinePlan, Plan, PlanOptions, PlannedStage } from '../plan/plan.js';
import type { Readiness } from '../runtime/runtime.js';
import { bootConcurrency, raiseLimits } from '../host/limits.js';
import { Semaphore } from '../wait.js';
import { type LabState, writeState } from '../state/state.js';
import { offlineContext, onlineContext, type OfflineTarget } from '../stages/context.js';
import type { LoadedMachine, LoadedStage } from '../stages/load.js';
import type { Lab } from './lab.js';
import { isRunning, machineApi, machineState, resetRoot, startMachine, stopMachine } from './machines.js';
import { pruneImages } from './image.js';
import { planFor } from './planning.js';
import { type ControllerStageReport, prepareControllerKey, runControllerStages } from './controller.js';
import type { UpEvent, UpProgress } from './progress.js';
import { withSession } from './session.js';
import { assertPoolHasRoom, POOL_FULL_HINT, poolFull } from './space.js';
import { keepFailedState, prunable, removeSnapshot, takeSnapshot } from './snapshots.js';

export interface UpOptions {
  plan?: PlanOptions;
  /** Told what lab up does as it does it; without it, nothing is shown. */
  onProgress?: UpProgress;
  waitForLock?: boolean;
}

export interface MachineReport {
  name: string;
  stages: { name: string; key: string; action: 'cached' | 'build'; startedAt?: number; durationMs?: number }[];
  booted: boolean;
  bootStartedAt?: number;
  bootMs?: number;
  failedUnits: string[];
}

export interface UpReport {
  /** Where the base image came from this time. */
  baseImage: 'pool' | 'cache' | ImageSourceKind;
  durationMs: number;
  machines: MachineReport[];
  prunedSnapshots: number;
  /** Host kernel limits raised for the lab's size, one line each. */
  hostLimits: string[];
  /** What interrupted commands had left in the pool, finished or undone first. */
  recovered: string[];
  /** The lab-wide stages run from the controller, after the machines' own. */
  controller: ControllerStageReport[];
}

interface Deferred {
  promise: Promise<boolean>;
  resolve(booted: boolean): void;
  reject(error: Error): void;
}

function deferred(): Deferred {
  let resolve!: (booted: boolean) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<boolean>((res, rej) => ((resolve = res), (reject = rej)));
  promise.catch(() => undefined); // observed by dependents; an unawaited rejection is not a crash
  return { promise, resolve, reject };
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
    writeState(lab.dirs.stateFile, state);
    // What dozens of systemd instances need from the kernel, raised before any of them boots.
    const hostLimits = raiseLimits(lab.config.machines.length);
    const base = await prepareBaseImage(lab, progress);
    // A vm asked for brings the containers it depends on; vms boot once every container is up.
    const only = options.plan?.only ?? [];
    const vms = lab.loaded.machines.filter((m) => m.config.kind === 'vm' && (only.length === 0 || only.includes(m.name)));
    const containersOnly = only.flatMap((name) => vms.find((vm) => vm.name === name)?.dependsOn ?? [name]);
    const onlyVms = only.length > 0 && containersOnly.length === 0;
    const plan = planFor(lab, { ...options.plan, only: containersOnly });
    const reports = onlyVms ? [] : await runPlan(lab, state, plan, base.path, progress);
    // Plays span the lab: run only when the whole lab is brought up.
    const controller = only.length === 0 ? await runController(lab, state, plan, progress, reports) : [];
    reports.push(...(await bootVms(lab, state, vms, reports)));
    const pruned = prunable(lab, lab.config.storage.keepSnapshots);
    for (const snapshot of pruned) await removeSnapshot(lab, snapshot);
    await pruneImages(lab); // an upgraded-from base goes once no snapshot is built on it
    return { baseImage: base.source, durationMs: Date.now() - started, machines: reports, prunedSnapshots: pruned.length, hostLimits, recovered, controller };
  });
}

/**
 * Starts the vms that are not running, and restarts those whose dependencies (gw, their DHCP and
 * boot server) booted in this run, so that they boot against them afresh. All at once.
 */
async function bootVms(lab: Lab, state: LabState, vms: readonly LoadedMachine[], containers: readonly MachineReport[]): Promise<MachineReport[]> {
  const rebooted = new Set(containers.filter((r) => r.booted).map((r) => r.name));
  return Promise.all(
    vms.map(async (vm): Promise<MachineReport> => {
      const report: MachineReport = { name: vm.name, stages: [], booted: false, failedUnits: [] };
      if (isRunning(state, vm.name) && !vm.dependsOn.some((d) => rebooted.has(d))) return report;
      await stopMachine(lab, state, vm.name, { hard: true });
      report.bootStartedAt = Date.now();
      const readiness = await startMachine(lab, state, vm.name, { waitForNetwork: false });
      return Object.assign(report, { booted: true, bootMs: readiness.bootMs });
    }),
  );
}

/** How long a running machine's systemd may take to say its state. */
const SYSTEM_STATE_TIMEOUT_MS = 5000;

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
  if (pending.length === 0) return plan.controller.map((s) => ({ name: s.name, key: s.key, action: s.action, recap: [] }));
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

/** Every machine at once, each told as it goes (where it is, then its end). */
async function runPlan(lab: Lab, state: LabState, plan: Plan, basePath: string, progress: UpProgress): Promise<MachineReport[]> {
  const ready = new Map(plan.machines.map((m) => [m.name, deferred()]));
  const bootSlots = new Semaphore(bootConcurrency(availableParallelism(), plan.machines.length, lab.config.boot.concurrency));
  const reports: MachineReport[] = [];
  const failures: Error[] = [];
  progress({ kind: 'machines-start', machines: plan.machines.map((m) => m.name) });
  await Promise.all(
    plan.machines.map(async (machinePlan) => {
      const machine = machinePlan.name;
      const loaded = lab.loaded.machines.find((m) => m.name === machine)!;
      const report: MachineReport = {
        name: machine,
        stages: machinePlan.stages.map((s) => ({ name: s.name, key: s.key, action: s.action })),
        booted: false,
        failedUnits: [],
      };
      reports.push(report);
      const job = new MachineJob(lab, state, machinePlan, loaded, basePath, report);
      try {
        await job.run(ready, bootSlots, (line) => progress({ kind: 'machine', machine, line }));
        progress({ kind: 'machine-end', machine });
      } catch (error) {
        failures.push(error as Error);
        progress({ kind: 'machine-end', machine, error });
      }
    }),
  );
  await progress({ kind: 'machines-end' });
  if (failures.length > 0) throw firstCause(failures);
  return reports;
}

/** A dependent that did not start because its dependency failed is not the story: the dependency is. */
function firstCause(failures: Error[]): LabError {
  const cause = failures.find((f) => !(f instanceof DependencyFailed)) ?? failures[0];
  return cause instanceof LabError ? cause : new LabError(String(cause.stack ?? cause), 1);
}

class DependencyFailed extends LabError {}

/** An online stage failed with its machine running: it is left so. */
class OnlineStageFailed extends Error {}

class MachineJob {
  constructor(
    private readonly lab: Lab,
    private readonly state: LabState,
    private readonly plan: MachinePlan,
    private readonly loaded: LoadedMachine,
    private readonly basePath: string,
    private readonly report: MachineReport,
  ) {}

  private get name(): string {
    return this.plan.name;
  }

  private snapshotPath(stage: PlannedStage): string {
    return this.lab.dirs.snapshot(this.name, stage.name, stage.key);
  }

  /**
   * Builds what changed, boots once the machines it depends on are up (holding one of the boot
   * slots), runs the checks of what was built, and tells the machines waiting for it. `progress`
   * gets one short line at each step: the machine's single line on screen.
   */
  async run(ready: Map<string, Deferred>, bootSlots: Semaphore, progress: (line: string) => void): Promise<void> {
    const entry = ready.get(this.name)!;
    try {
      await this.steps(ready, bootSlots, progress);
      entry.resolve(this.report.booted);
    } catch (error) {
      entry.reject(error as Error); // the machines waiting for this one fail too
      throw error;
    }
  }

  private async steps(ready: Map<string, Deferred>, bootSlots: Semaphore, progress: (line: string) => void): Promise<void> {
    const { stages } = this.plan;
    const firstBuild = stages.findIndex((s) => s.action === 'build');
    const built = firstBuild >= 0 ? stages.slice(firstBuild) : [];
    let rootChanged = false;
    for (const [offset, stage] of built.entries()) {
      const index = firstBuild + offset;
      progress(`building ${stage.name} (${offset + 1}/${built.length})`);
      if (offset === 0) {
        await stopMachine(this.lab, this.state, this.name, { hard: true }); // its root is about to be replaced
        const parent = index === 0 ? undefined : stages[index - 1];
        await resetRoot(this.lab, this.state, this.name, parent ? this.snapshotPath(parent) : this.basePath, parent && origin(parent));
        rootChanged = true;
      }
      const startedAt = Date.now();
      await this.buildStage(stage, ready, bootSlots, progress);
      Object.assign(this.report.stages[index], { startedAt, durationMs: Date.now() - startedAt });
    }
    const summary = built.length ? `built ${built.map((s) => s.name).join(',')}` : 'cached';

    // Its last stage, or the last controller stage cached (the lab after that play).
    const last = this.plan.resumeFrom ?? origin(stages.at(-1)!);
    const ms = machineState(this.state, this.name);
    if (!rootChanged && (ms.rootKey !== last.key || !existsSync(this.lab.dirs.machineRoot(this.name)))) {
      await stopMachine(this.lab, this.state, this.name, { hard: true });
      await resetRoot(this.lab, this.state, this.name, this.lab.dirs.snapshot(this.name, last.stage, last.key), last);
      rootChanged = true;
    }
    const dependencyRebooted = await this.dependenciesUp(ready, (dependency) => progress(`${summary}, waiting for ${dependency}`));
    if ((await this.isUp()) && !rootChanged && !dependencyRebooted) {
      progress(`${summary}, already running`);
    } else {
      progress(`${summary}, waiting to boot`);
      // Booted after what it depends on, so it sees their current addresses and names.
      await stopMachine(this.lab, this.state, this.name, { hard: rootChanged });
      this.report.bootStartedAt = Date.now();
      const readiness = await this.boot(bootSlots, () => progress(`${summary}, booting`));
      Object.assign(this.report, { booted: true, bootMs: readiness.bootMs, failedUnits: readiness.failedUnits });
      const failed = readiness.failedUnits.length ? ` (failed units: ${readiness.failedUnits.join(', ')})` : '';
      progress(`${summary}, ${readiness.state} in ${(readiness.bootMs / 1000).toFixed(1)}s${failed}`);
    }
    for (const stage of built.filter((s) => this.loadedStage(s).definition.check)) await this.checkStage(stage, built);
  }

  /**
   * Running as its systemd says, not merely alive: a command killed while it stopped or started the
   * machine leaves an nspawn whose container is gone, on its way down, still booting (waited for),
   * or about to fail its start (its veth raced the previous boot's). One bounded question, without
   * `--wait`: a machine on its way down may never answer one that waits.
   */
  private async isUp(): Promise<boolean> {
    const process = this.state.machines[this.name]?.process;
    if (!process || !isRunning(this.state, this.name)) return false;
    const handle = { name: this.name, process };
    if ((await this.lab.runtime.leaderPid(handle)) === undefined) return false;
    const asked = await this.lab.runtime.exec(handle, ['systemctl', 'is-system-running'], { allowFailure: true, timeout: SYSTEM_STATE_TIMEOUT_MS }).catch(() => undefined);
    const systemState = asked?.stdout.trim();
    if (systemState === 'running' || systemState === 'degraded') return true;
    if (systemState !== 'initializing' && systemState !== 'starting') return false;
    try {
      await this.lab.runtime.waitReady(handle, this.lab.config.boot.timeoutSeconds * 1000);
      return true;
    } catch (error) {
      if (error instanceof LabError) return false; // booted again below, which says what is wrong if it still is
      throw error;
    }
  }

  /** Waits for the machines this one depends on (those in this run); true when one of them was rebooted. */
  private async dependenciesUp(ready: Map<string, Deferred>, waiting: (dependency: string) => void): Promise<boolean> {
    let rebooted = false;
    for (const dependency of this.plan.dependsOn) {
      const dependencyReady = ready.get(dependency);
      if (!dependencyReady) continue; // not part of this run (`lab up <machine>` of something else): left as it is
      waiting(dependency);
      try {
        rebooted = (await dependencyReady.promise) || rebooted; // awaited for every dependency, not short-circuited
      } catch {
        throw new DependencyFailed(`${this.name} not started: ${dependency} failed`, 1);
      }
    }
    return rebooted;
  }

  /** Boots the machine in one of the boot slots, until running with its interfaces configured. */
  private async boot(bootSlots: Semaphore, booting: () => void): Promise<Readiness> {
    const release = await bootSlots.acquire();
    try {
      booting();
      return await startMachine(this.lab, this.state, this.name, { waitForNetwork: true });
    } finally {
      release();
    }
  }

  private loadedStage(stage: PlannedStage): LoadedStage {
    return this.loaded.stages.find((s) => s.name === stage.name)!;
  }

  /** The idempotence check: the stage applied again on a root made from its own snapshot, which is left as it is. */
  async reapply(stage: PlannedStage, ready: Map<string, Deferred>, bootSlots: Semaphore): Promise<void> {
    await stopMachine(this.lab, this.state, this.name, { hard: true });
    // A root that is no stage's result: its key matches no plan, so an interrupted check is rebuilt by lab up.
    await resetRoot(this.lab, this.state, this.name, this.snapshotPath(stage), { stage: `${stage.name} (applied again)`, key: `${stage.key}.again` });
    await this.buildStage(stage, ready, bootSlots, () => undefined, { snapshot: false });
  }

  private async buildStage(stage: PlannedStage, ready: Map<string, Deferred>, bootSlots: Semaphore, progress: (line: string) => void, options = { snapshot: true }): Promise<void> {
    const loaded = this.loadedStage(stage);
    const logFile = this.lab.dirs.stageLog(this.name, stage.name);
    mkdirSync(path.dirname(logFile), { recursive: true });
    rmSync(logFile, { force: true });
    const root = this.lab.dirs.machineRoot(this.name);
    const pm = this.lab.image.packageManager(root);
    const target: OfflineTarget = {
      runner: this.lab.builds,
      root,
      nspawnName: this.lab.names.nspawnName(this.name),
      fixturesDir: loaded.fixturesDir,
      logFile,
      binds: [...this.loaded.config.binds, ...(pm ? [{ source: this.lab.packageCache, target: pm.cacheDir }] : [])],
    };
    try {
      if (stage.packages.length > 0) {
        // Always offline, also for an online stage: downloads go through the host's network, never the lab's.
        if (!pm) throw new LabError(`the image has no package manager lab knows (apt, pacman) to install ${stage.packages.join(' ')}`, 1);
        await installPackages(this.lab.builds, pm, { ...target, packageCache: this.lab.packageCache }, stage.packages);
      }
      if (loaded.definition.online) await this.runOnline(stage, loaded, target, ready, bootSlots, progress);
      else await loaded.definition.run?.(offlineContext(target, this.loaded.view, loaded.definition.fixtures ?? []));
    } catch (error) {
      machineState(this.state, this.name).rootKey = undefined; // the root holds half a stage
      writeState(this.lab.dirs.stateFile, this.state);
      const full = poolFull(this.lab);
      if (full) throw new StageError(`stage ${this.name}@${stage.name} failed: ${full}`, this.name, stage.name, logFile, `${POOL_FULL_HINT}; full log: ${logFile}`);
      const kept = await keepFailedState(this.lab, this.name, stage.name, stage.key);
      if (error instanceof OnlineStageFailed) throw stageFailure(this.name, stage.name, error.cause, undefined, 'online run', logFile, kept);
      throw stageFailure(this.name, stage.name, error, logFile, 'run', undefined, kept);
    }
    if (!options.snapshot) return;
    await takeSnapshot(this.lab, this.name, stage.name, stage.key);
    const ms = machineState(this.state, this.name);
    ms.rootKey = stage.key;
    ms.rootStage = stage.name;
    writeState(this.lab.dirs.stateFile, this.state);
  }

  /**
   * An online stage: the machines it depends on up, the machine booted with its earlier stages,
   * the stage run in it, then a clean stop, so that its snapshot is a root at rest. A failure leaves
   * the machine running, to look inside.
   */
  private async runOnline(stage: PlannedStage, loaded: LoadedStage, target: OfflineTarget, ready: Map<string, Deferred>, bootSlots: Semaphore, progress: (line: string) => void): Promise<void> {
    await this.dependenciesUp(ready, (dependency) => progress(`building ${stage.name}: waiting for ${dependency}`));
    await this.boot(bootSlots, () => progress(`building ${stage.name}: booting for it`));
    const process = machineState(this.state, this.name).process!;
    progress(`building ${stage.name} in the running machine`);
    try {
      await loaded.definition.run?.(
        onlineContext(target, this.loaded.view, loaded.definition.fixtures ?? [], (argv, options) => this.lab.runtime.exec({ name: this.name, process }, argv, options)),
      );
    } catch (error) {
      throw new OnlineStageFailed(String(error), { cause: error });
    }
    await stopMachine(this.lab, this.state, this.name, { hard: false });
  }

  /** A failed check invalidates its stage and those after it: the last good snapshot is the one before. */
  private async checkStage(stage: PlannedStage, built: PlannedStage[]): Promise<void> {
    const machine = machineApi(this.lab, this.state, this.name);
    try {
      await this.loadedStage(stage).definition.check!(machine, this.loaded.view);
    } catch (error) {
      const kept = await keepFailedState(this.lab, this.name, stage.name, stage.key);
      for (const invalid of built.slice(built.indexOf(stage))) await removeSnapshot(this.lab, this.snapshotPath(invalid));
      machineState(this.state, this.name).rootKey = undefined;
      writeState(this.lab.dirs.stateFile, this.state);
      throw stageFailure(this.name, stage.name, error, undefined, 'check', undefined, kept);
    }
  }
}

/**
 * Applies a built stage of a machine a second time, on a root made from the stage's own snapshot
 * (the machines it depends on running): what `lab up --idempotence` compares with the snapshot.
 */
export async function reapplyStage(lab: Lab, state: LabState, machine: string, stageName: string): Promise<void> {
  const plan = planFor(lab).machines.find((m) => m.name === machine)!;
  const stage = plan.stages.find((s) => s.name === stageName)!;
  const loaded = lab.loaded.machines.find((m) => m.name === machine)!;
  const report: MachineReport = { name: machine, stages: [], booted: false, failedUnits: [] };
  const ready = new Map(plan.dependsOn.map((dependency) => [dependency, upAlready()]));
  await new MachineJob(lab, state, plan, loaded, '', report).reapply(stage, ready, new Semaphore(1));
}

/** A dependency that runs already (the lab is up): nothing to wait for, and not rebooted. */
function upAlready(): Deferred {
  const entry = deferred();
  entry.resolve(false);
  return entry;
}

function origin(stage: PlannedStage): { stage: string; key: string } {
  return { stage: stage.name, key: stage.key };
}

/** `kept`: the name the failed state was kept under, to restore it later. */
function stageFailure(machine: string, stage: string, error: unknown, logFile: string | undefined, step = 'run', runningLog?: string, kept?: string): StageError {
  const detail = error instanceof CommandError || error instanceof LabError ? error.message : String((error as Error)?.stack ?? error);
  const running = `the machine is still running: look inside with 'lab shell ${machine}'`;
  const hint = logFile ? `full log: ${logFile}` : runningLog ? `${running}; full log: ${runningLog}` : running;
  return new StageError(
    `stage ${machine}@${stage} failed (${step}): ${detail}`,
    machine,
    stage,
    logFile ?? runningLog,
    kept ? `${hint}; its root at the failure is kept: lab restore ${kept}` : hint,
  );
}
