import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { BuildFailure, LabError, StageError } from '../errors.js';
import { MiB } from '../exec.js';
import { installPackages } from '../image/packages.js';
import type { MachinePlan, Plan, PlannedStage } from '../plan/plan.js';
import type { Readiness } from '../runtime/runtime.js';
import { bootConcurrency, buildConcurrency } from '../host/limits.js';
import { Semaphore } from '../wait.js';
import type { LabState } from '../state/state.js';
import { offlineContext, onlineContext, type OfflineTarget } from '../stages/context.js';
import type { LoadedMachine, LoadedStage } from '../stages/load.js';
import type { Lab } from './lab-types.js';
import { invalidateRoot, isRunning, machineApi, machineState, prepareBinds, recordRoot, resetRoot, type RootOrigin, startMachine, stopMachine } from './machines.js';
import { planFor } from './planning.js';
import type { UpProgress } from './progress.js';
import { POOL_FULL_HINT, poolFull } from './space.js';
import { keepFailedState, removeSnapshot, takeSnapshot } from './snapshots.js';
import { stageFailure } from './stage-failure.js';
import { type After, inDependencyOrder } from './boot-order.js';
import { disklessDirectory } from './diskless.js';
import { disklessOn } from '../config/diskless.js';

export interface MachineReport {
  name: string;
  stages: { name: string; key: string; action: 'cached' | 'build'; startedAt?: number; durationMs?: number }[];
  booted: boolean;
  bootStartedAt?: number;
  bootMs?: number;
  failedUnits: string[];
}

/** How long a running machine's systemd may take to say its state. */
const SYSTEM_STATE_TIMEOUT_MS = 5000;

/** Every machine of the plan at once, each told as it goes (where it is, then its end). */
export async function runMachineJobs(lab: Lab, state: LabState, plan: Plan, basePath: string, progress: UpProgress): Promise<MachineReport[]> {
  const bootSlots = new Semaphore(bootConcurrency(availableParallelism(), plan.machines.length, lab.config.boot.concurrency));
  // What other machines wait for builds first: gw's stages before the room's.
  const awaited = new Set(plan.machines.flatMap((m) => m.dependsOn));
  const buildSlots = new Semaphore(buildConcurrency(availableParallelism()));
  const reports: MachineReport[] = [];
  const failures: Error[] = [];
  progress({ kind: 'machines-start', machines: plan.machines.map((m) => m.name) });
  await inDependencyOrder(
    plan.machines.map((m) => m.name),
    async (machine, after) => {
      const machinePlan = plan.machines.find((m) => m.name === machine)!;
      const loaded = lab.loaded.machines.find((m) => m.name === machine)!;
      const report: MachineReport = {
        name: machine,
        stages: machinePlan.stages.map((s) => ({ name: s.name, key: s.key, action: s.action })),
        booted: false,
        failedUnits: [],
      };
      reports.push(report);
      const job = new MachineJob(lab, state, machinePlan, loaded, basePath, report, { slots: buildSlots, priority: awaited.has(machine) ? 0 : 1 });
      try {
        await job.run(after, bootSlots, (line) => progress({ kind: 'machine', machine, line }));
        progress({ kind: 'machine-end', machine });
        return report.booted;
      } catch (error) {
        failures.push(error as Error);
        progress({ kind: 'machine-end', machine, error });
        throw error; // the machines waiting for this one fail too
      }
    },
  );
  await progress({ kind: 'machines-end' });
  if (failures.length > 0) throw firstCause(failures);
  return reports;
}

/** A dependent that did not start because its dependency failed is not the story: the dependency is. */
function firstCause(failures: Error[]): LabError {
  const cause = failures.find((f) => !(f instanceof DependencyFailed)) ?? failures[0];
  return cause instanceof LabError ? cause : new BuildFailure(String(cause.stack ?? cause));
}

class DependencyFailed extends LabError {}

/** An online stage failed with its machine running: it is left so. */
class OnlineStageFailed extends Error {}

/** The build slots (see buildConcurrency) and this machine's place in their queue. */
interface BuildSlots {
  slots: Semaphore;
  priority: number;
}

/** One machine of a lab up: its stages built from the first changed one, then its boot and the checks of what was built. */
class MachineJob {
  /** Each stage's definition, by name: the plan keeps only what its keys are made of. */
  private readonly definitions: ReadonlyMap<string, LoadedStage>;

  constructor(
    private readonly lab: Lab,
    private readonly state: LabState,
    private readonly plan: MachinePlan,
    private readonly loaded: LoadedMachine,
    private readonly basePath: string,
    private readonly report: MachineReport,
    private readonly build: BuildSlots,
  ) {
    this.definitions = new Map(loaded.stages.map((s) => [s.name, s]));
  }

  private get name(): string {
    return this.plan.name;
  }

  private snapshotPath(stage: PlannedStage): string {
    return this.lab.dirs.snapshot(this.name, stage.name, stage.key);
  }

  private loadedStage(stage: PlannedStage): LoadedStage {
    return this.definitions.get(stage.name)!;
  }

  /**
   * Builds what changed, boots once the machines it depends on are up (holding one of the boot
   * slots), runs the checks of what was built, and tells the machines waiting for it. `progress`
   * gets one short line at each step: the machine's single line on screen.
   */
  async run(after: After, bootSlots: Semaphore, progress: (line: string) => void): Promise<void> {
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
      await this.buildStage(stage, after, bootSlots, progress);
      Object.assign(this.report.stages[index], { startedAt, durationMs: Date.now() - startedAt });
    }
    const { bootsFrom } = this.plan;
    const summary = bootsFrom ? `diskless on ${bootsFrom.machine}:${bootsFrom.path}` : built.length ? `built ${built.map((s) => s.name).join(',')}` : 'cached';

    // A diskless machine has no root of its own: it boots again when its root machine does (a dependency).
    if (!bootsFrom) {
      if (!rootChanged) rootChanged = await this.putRootBack();
      this.checkDisklessRoots();
    }
    const dependencyRebooted = await this.dependenciesUp(after, (dependency) => progress(`${summary}, waiting for ${dependency}`));
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
    await this.stagesReady(this.plan.stages, (stage) => progress(`${summary}, waiting for ${stage} to be ready`));
    for (const stage of built.filter((s) => this.loadedStage(s).definition.check)) await this.checkStage(stage, built);
  }

  /** Its root from its last stage, or the last controller stage cached (the lab after that play), when it is not that; true when it was put back. */
  private async putRootBack(): Promise<boolean> {
    const last = this.plan.resumeFrom ?? origin(this.plan.stages.at(-1)!);
    if (machineState(this.state, this.name).rootKey === last.key && existsSync(this.lab.dirs.machineRoot(this.name))) return false;
    await stopMachine(this.lab, this.state, this.name, { hard: true });
    await resetRoot(this.lab, this.state, this.name, this.lab.dirs.snapshot(this.name, last.stage, last.key), last);
    return true;
  }

  /**
   * The directories its diskless machines boot, checked in its root before it boots (exit 2 naming
   * the field); not when --until cuts it short: they are then not in the plan.
   */
  private checkDisklessRoots(): void {
    if (this.plan.stages.length < this.loaded.stages.length) return;
    for (const name of disklessOn(this.lab.config, this.name)) disklessDirectory(this.lab, this.lab.config.machines.find((m) => m.name === name)!, this.lab.dirs.machineRoot(this.name));
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
  private async dependenciesUp(after: After, waiting: (dependency: string) => void): Promise<boolean> {
    let rebooted = false;
    for (const dependency of this.plan.dependsOn) {
      const dependencyReady = after(dependency);
      if (!dependencyReady) continue; // not part of this run (`lab up <machine>` of something else): left as it is
      waiting(dependency);
      try {
        rebooted = (await dependencyReady) || rebooted; // awaited for every dependency, not short-circuited
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

  /** The idempotence check: the stage applied again on a root made from its own snapshot, which is left as it is. */
  async reapply(stage: PlannedStage, after: After, bootSlots: Semaphore): Promise<void> {
    await stopMachine(this.lab, this.state, this.name, { hard: true });
    // A root that is no stage's result: its key matches no plan, so an interrupted check is rebuilt by lab up.
    await resetRoot(this.lab, this.state, this.name, this.snapshotPath(stage), { stage: `${stage.name} (applied again)`, key: `${stage.key}.again` });
    // Its own log: the build's stays as the build wrote it.
    await this.buildStage(stage, after, bootSlots, () => undefined, { snapshot: false, log: `${stage.name}.again` });
  }

  private async buildStage(stage: PlannedStage, after: After, bootSlots: Semaphore, progress: (line: string) => void, options: { snapshot: boolean; log?: string } = { snapshot: true }): Promise<void> {
    const loaded = this.loadedStage(stage);
    const logFile = this.lab.dirs.stageLog(this.name, options.log ?? stage.name);
    mkdirSync(path.dirname(logFile), { recursive: true });
    rmSync(logFile, { force: true });
    const root = this.lab.dirs.machineRoot(this.name);
    const pm = this.lab.image.packageManager(root);
    await prepareBinds(this.lab, this.name);
    const target: OfflineTarget = {
      runner: this.lab.buildSteps,
      root,
      nspawnName: this.lab.names.nspawnName(this.name),
      fixturesDir: loaded.fixturesDir,
      logFile,
      logLimitBytes: this.lab.config.stageLimits.logMiB * MiB,
      timeoutMs: (loaded.definition.timeoutSeconds ?? this.lab.config.stageLimits.timeoutSeconds) * 1000,
      binds: [...this.loaded.config.binds, ...(pm ? [{ source: this.lab.packageCache, target: pm.cacheDir }] : [])],
    };
    try {
      if (stage.packages.length > 0) {
        // Always offline, also for an online stage: downloads go through the host's network, never the lab's.
        if (!pm) throw new BuildFailure(`the image has no package manager lab knows (apt, pacman) to install ${stage.packages.join(' ')}`);
        await this.inBuildSlot(() => installPackages(this.lab.buildSteps, pm, { ...target, packageCache: this.lab.packageCache }, stage.packages));
      }
      // An online stage holds no build slot: it waits for other machines, which may need one.
      if (loaded.definition.online) await this.runOnline(stage, loaded, target, after, bootSlots, progress);
      else await this.inBuildSlot(async () => loaded.definition.run?.(offlineContext(target, this.loaded.view, loaded.definition.fixtures ?? [])));
    } catch (error) {
      invalidateRoot(this.lab, this.state, this.name); // the root holds half a stage
      const full = poolFull(this.lab);
      if (full) throw new StageError(`stage ${this.name}@${stage.name} failed: ${full}`, { machine: this.name, stage: stage.name, logFile, hint: `${POOL_FULL_HINT}; full log: ${logFile}` });
      const kept = await keepFailedState(this.lab, this.name, stage.name, stage.key);
      if (error instanceof OnlineStageFailed) throw stageFailure({ machine: this.name, stage: stage.name, step: 'online run', error: error.cause, log: logFile, kept });
      throw stageFailure({ machine: this.name, stage: stage.name, step: 'run', error, log: logFile, kept });
    }
    if (!options.snapshot) return;
    await takeSnapshot(this.lab, this.name, stage.name, stage.key);
    recordRoot(this.lab, this.state, this.name, origin(stage));
  }

  private async inBuildSlot<T>(work: () => Promise<T>): Promise<T> {
    const release = await this.build.slots.acquire(this.build.priority);
    try {
      return await work();
    } finally {
      release();
    }
  }

  /**
   * An online stage: the machines it depends on up, the machine booted with its earlier stages,
   * the stage run in it, then a clean stop, so that its snapshot is a root at rest. A failure leaves
   * the machine running, to look inside.
   */
  private async runOnline(stage: PlannedStage, loaded: LoadedStage, target: OfflineTarget, after: After, bootSlots: Semaphore, progress: (line: string) => void): Promise<void> {
    await this.dependenciesUp(after, (dependency) => progress(`building ${stage.name}: waiting for ${dependency}`));
    await this.boot(bootSlots, () => progress(`building ${stage.name}: booting for it`));
    await this.stagesReady(this.plan.stages.slice(0, this.plan.stages.indexOf(stage)), (earlier) => progress(`building ${stage.name}: waiting for ${earlier} to be ready`));
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

  /** The booted machine's stages' readiness, in order: what they serve is up, for the machines (and online stages) after them. */
  private async stagesReady(stages: readonly PlannedStage[], waiting: (stage: string) => void): Promise<void> {
    const machine = machineApi(this.lab, this.state, this.name);
    for (const stage of stages) {
      const { ready } = this.loadedStage(stage).definition;
      if (!ready) continue;
      waiting(stage.name);
      try {
        await ready(machine, this.loaded.view, this.lab.config.boot.timeoutSeconds * 1000);
      } catch (error) {
        throw stageFailure({ machine: this.name, stage: stage.name, step: 'ready', error });
      }
    }
  }

  /** A failed check invalidates its stage and those after it: the last good snapshot is the one before. */
  private async checkStage(stage: PlannedStage, built: PlannedStage[]): Promise<void> {
    const machine = machineApi(this.lab, this.state, this.name);
    try {
      await this.loadedStage(stage).definition.check!(machine, this.loaded.view);
    } catch (error) {
      const kept = await keepFailedState(this.lab, this.name, stage.name, stage.key);
      for (const invalid of built.slice(built.indexOf(stage))) await removeSnapshot(this.lab, this.snapshotPath(invalid));
      invalidateRoot(this.lab, this.state, this.name);
      throw stageFailure({ machine: this.name, stage: stage.name, step: 'check', error, kept });
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
  // Every dependency runs already (the lab is up): nothing to wait for, and not rebooted.
  await new MachineJob(lab, state, plan, loaded, '', report, { slots: new Semaphore(1), priority: 0 }).reapply(stage, () => Promise.resolve(false), new Semaphore(1));
}

function origin(stage: PlannedStage): RootOrigin {
  return { stage: stage.name, key: stage.key };
}
