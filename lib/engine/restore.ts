import { existsSync, renameSync } from 'node:fs';
import { InfraError, UsageError, unknownName } from '../errors.js';
import { kickDhcpClients, servesDhcp, whenDhcpListens } from '../network/dhcp-kick.js';
import { FAILED_SUFFIX, parseStageRef, type PlannedStage, type StageRef } from '../plan/plan.js';
import type { LabState } from '../state/state.js';
import type { Lab } from './lab-types.js';
import { isRunning, recordRoot, startMachine, stopMachine } from './machines.js';
import { type Checkpoint, checkpointNamed, CHECKPOINT_PREFIX, checkpointRoot, listCheckpoints, readCheckpoint, stageNames } from './checkpoints.js';
import { withSession } from './session.js';
import { findStageSnapshot, stageSnapshot } from './snapshots.js';
import { bootInOrder, dependentsOf } from './boot-order.js';
import { planFor } from './planning.js';
import { disklessDirectory } from './diskless.js';

export interface RestoreReport {
  /** The checkpoint restored, when it was one (`stage` is then its name). */
  checkpoint?: string;
  /** `bootMs` is missing for a machine left stopped (it was stopped in the checkpoint). */
  restored: { machine: string; stage: string; key: string; current: boolean; bootMs?: number }[];
  /** Running machines that depend on a restored one, rebooted so they see it afresh (DHCP, names). */
  rebooted: string[];
  /** Machines whose stages do not include the one asked for. */
  leftAlone: string[];
  /** Diskless machines stopped and not booted again: the restored root has no directory for them to boot (why). */
  leftStopped: { machine: string; why: string }[];
  durationMs: number;
}

interface Target {
  machine: string;
  stage: string;
  key: string;
  /** False when the stage's definition changed since: the newest snapshot of the stage is used. */
  current: boolean;
  /** The read-only root the machine's comes from. */
  source: string;
  /** What the state records of the new root: a key no plan has makes lab up rebuild it. */
  rootStage?: string;
  rootKey?: string;
  /** Booted once restored (a checkpoint's machine that was stopped then stays stopped). */
  boot: boolean;
}

/** Which snapshot each machine goes back to (the pool must be open); fails if one is missing, before any machine is touched. */
function targetsOf(lab: Lab, ref: StageRef): { targets: Target[]; leftAlone: string[] } {
  const plan = planFor(lab);
  const targets: Target[] = [];
  const leftAlone: string[] = [];
  for (const machine of plan.machines) {
    // A diskless machine has no stage of its own, nor a snapshot of a controller stage.
    const stage: Pick<PlannedStage, 'name'> | undefined = (ref.machine && ref.machine !== machine.name) || machine.bootsFrom ? undefined : (machine.stages.find((s) => s.name === ref.stage) ?? plan.controller.find((s) => s.name === ref.stage));
    if (!stage) {
      leftAlone.push(machine.name);
      continue;
    }
    if (!ref.failed) {
      const found = stageSnapshot(lab, machine.name, stage.name);
      const source = lab.dirs.snapshot(machine.name, stage.name, found.key);
      targets.push({ machine: machine.name, stage: stage.name, ...found, source, rootStage: stage.name, rootKey: found.key, boot: true });
      continue;
    }
    // A failed state: only the machines where the stage failed have one. It is no stage's result:
    // its key never matches a plan's, so lab up rebuilds it.
    const name = `${stage.name}${FAILED_SUFFIX}`;
    const failed = findStageSnapshot(lab, machine.name, name);
    if (failed) targets.push({ machine: machine.name, stage: name, ...failed, source: lab.dirs.snapshot(machine.name, name, failed.key), rootStage: name, rootKey: `${failed.key}${FAILED_SUFFIX}`, boot: true });
    else leftAlone.push(machine.name);
  }
  if (ref.failed && targets.length === 0) {
    const what = `${ref.machine ? `${ref.machine}@` : ''}${ref.stage}`;
    throw new UsageError(`no failed state of ${what} is kept (one is kept when a stage fails in lab up)`, 'lab snapshots lists them');
  }
  return { targets, leftAlone };
}

/** The new root of a restore, as a writable copy of its source beside the root: made while the machine still runs. */
async function prepareIncoming(lab: Lab, target: Target): Promise<void> {
  const incoming = `${lab.dirs.machineRoot(target.machine)}.incoming`;
  await lab.storage.remove(incoming);
  try {
    await lab.storage.snapshot(target.source, incoming, { readonly: false });
  } catch (error) {
    throw new InfraError(`restore of ${target.machine} failed; its root is as it was: ${(error as Error).message}`);
  }
}

/**
 * Replaces a stopped machine's root by its prepared incoming one, atomically: the old one is moved
 * aside, not deleted, until the new one is in place. Returns the old root's path, to delete.
 */
function swapRoot(lab: Lab, state: LabState, target: Target): string | undefined {
  const root = lab.dirs.machineRoot(target.machine);
  const incoming = `${root}.incoming`;
  const outgoing = `${root}.outgoing`;
  const hadRoot = existsSync(root);
  // Until the renames are done and recorded, the root is of no known stage: if this process dies
  // between them, the next command rebuilds the root from its snapshot rather than trust it.
  recordRoot(lab, state, target.machine, undefined);
  if (hadRoot) renameSync(root, outgoing);
  try {
    renameSync(incoming, root);
  } catch (error) {
    if (hadRoot) renameSync(outgoing, root);
    throw new InfraError(`restore of ${target.machine} failed; its root is as it was: ${(error as Error).message}`);
  }
  recordRoot(lab, state, target.machine, { stage: target.rootStage, key: target.rootKey });
  return hadRoot ? outgoing : undefined;
}

/**
 * `lab restore <stage>` or `<machine>@<stage>`: each machine that has the stage is stopped, its
 * root replaced by the stage's snapshot, and booted again until running, in dependency order.
 * `lab restore <checkpoint>`: every machine of the checkpoint back to its root there, and running
 * if it ran then. `<machine>@<stage>.failed`: the root as it was when the stage failed.
 */
export async function restore(lab: Lab, refText: string, options: { waitForLock?: boolean } = {}): Promise<RestoreReport> {
  const checkpoint = checkpointOf(lab, refText); // an unknown name: exit 2, nothing touched
  const ref = checkpoint ? undefined : parseStageRef(refText, lab.loaded.machines, { failed: true, controller: lab.loaded.controller.map((s) => s.name) });
  const report = await restoreTargets(lab, `restore ${refText}`, () => (checkpoint ? checkpointTargets(lab, checkpoint) : targetsOf(lab, ref!)), options);
  return { ...report, checkpoint: checkpoint?.name };
}

/**
 * Machines back to a checkpoint exactly as they were: the state records the origin their roots had
 * then (lab bisect puts the lab back so). `machines`: only these (default: all of it).
 */
export async function restoreCheckpointExactly(lab: Lab, name: string, machines?: ReadonlySet<string>, options: { waitForLock: boolean } = { waitForLock: true }): Promise<RestoreReport> {
  const checkpoint = checkpointNamed(lab, name);
  return restoreTargets(lab, `restore ${name}`, () => checkpointTargets(lab, checkpoint, { exact: true, machines }), options);
}

/** Several machines at once, each to a stage of its own (`lab bisect` walks the lab's build so). */
export async function restoreStages(lab: Lab, stages: ReadonlyMap<string, string>, options: { waitForLock?: boolean } = {}): Promise<RestoreReport> {
  const label = `restore ${[...stages].map(([machine, stage]) => `${machine}@${stage}`).join(' ')}`;
  return restoreTargets(
    lab,
    label,
    () => {
      const targets: Target[] = [];
      for (const [machine, stage] of stages) {
        const found = stageSnapshot(lab, machine, stage);
        targets.push({ machine, stage, ...found, source: lab.dirs.snapshot(machine, stage, found.key), rootStage: stage, rootKey: found.key, boot: true });
      }
      return { targets, leftAlone: lab.config.machines.map((m) => m.name).filter((m) => !stages.has(m)) };
    },
    options,
  );
}

async function restoreTargets(lab: Lab, label: string, resolve: () => { targets: Target[]; leftAlone: string[] }, options: { waitForLock?: boolean }): Promise<RestoreReport> {
  const started = Date.now();
  return withSession(lab, label, { action: 'restore', image: false, waitForLock: options.waitForLock }, async ({ state }) => {
    const { targets, leftAlone } = resolve();
    await lab.network.setup(state);
    await lab.packageProxy.start(state);
    const restoredNames = new Set(targets.map((t) => t.machine));
    const dependents = dependentsOf(lab, restoredNames).filter((name) => isRunning(state, name));
    const leftStopped = unbootable(lab, targets, dependents);
    // Dependents go down first, so that nothing runs against a machine mid-swap.
    await Promise.all(dependents.map((name) => stopMachine(lab, state, name, { hard: false })));
    await Promise.all(targets.flatMap((t) => [prepareIncoming(lab, t), stopMachine(lab, state, t.machine, { hard: true })]));
    const outgoing = targets.map((t) => swapRoot(lab, state, t));
    // The restored machines boot all at once (a restore waits for no network, so none waits for
    // another); the running machines that depend on them come back after, in dependency order.
    const bootMs = new Map<string, number>();
    const booting = new Set(targets.filter((t) => t.boot).map((t) => t.machine));
    await Promise.all([
      ...[...booting].map(async (machine) => {
        const boot = startMachine(lab, state, machine, { waitForNetwork: false });
        // A DHCP server's clients ask again as soon as it listens (before the rest of its boot
        // ends), and once more when it is up, in case the first request came too early for it.
        const server = servesDhcp(lab.topology, machine);
        const kicked = server ? whenDhcpListens(lab, state, machine, boot, lab.config.boot.timeoutSeconds * 1000).then(() => kickDhcpClients(lab, state, machine, booting)) : undefined;
        bootMs.set(machine, (await boot).bootMs);
        booting.delete(machine);
        await kicked;
        if (server) await kickDhcpClients(lab, state, machine, booting);
      }),
      ...outgoing.map((old) => (old ? lab.storage.remove(old) : undefined)), // no machine uses them any more
    ]);
    const rebooted = dependents.filter((name) => !leftStopped.some((l) => l.machine === name));
    await bootInOrder(lab, state, rebooted, { waitForNetwork: false });
    return {
      restored: targets.map(({ machine, stage, key, current }) => ({ machine, stage, key, current, bootMs: bootMs.get(machine) })),
      rebooted,
      leftAlone,
      leftStopped,
      durationMs: Date.now() - started,
    };
  });
}

/**
 * The running diskless machines whose root machine is restored to a root without the directory they
 * boot (an earlier stage, before the one that makes it): they go down with it and stay down, with why.
 */
function unbootable(lab: Lab, targets: readonly Target[], running: readonly string[]): { machine: string; why: string }[] {
  return running.flatMap((name) => {
    const machine = lab.config.machines.find((m) => m.name === name)!;
    const target = machine.root && targets.find((t) => t.machine === machine.root!.machine);
    if (!target) return [];
    try {
      disklessDirectory(lab, machine, target.source);
      return [];
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      return [{ machine: name, why: `${target.machine}@${target.stage}: ${error.message}` }];
    }
  });
}

/** The checkpoint `text` names, undefined when it names a stage; exit 2 when it names neither. */
function checkpointOf(lab: Lab, text: string): Checkpoint | undefined {
  if (text.includes('@') || text.endsWith(FAILED_SUFFIX)) return undefined;
  const stages = stageNames(lab);
  if (stages.includes(text)) return undefined;
  const found = readCheckpoint(lab, text);
  if (!found) throw unknownName('stage or checkpoint', text, [...stages, ...listCheckpoints(lab).map((c) => c.name)]);
  return found;
}

/**
 * Every machine of the checkpoint that the lab still has (of `machines`, if given), back to its root
 * there. Its origin is recorded as the checkpoint, a key no plan has (lab up rebuilds it), or with
 * `exact` as it was when the checkpoint was taken.
 */
function checkpointTargets(lab: Lab, checkpoint: Checkpoint, options: { exact?: boolean; machines?: ReadonlySet<string> } = {}): { targets: Target[]; leftAlone: string[] } {
  const kept = new Map(checkpoint.machines.map((m) => [m.name, m]));
  const targets: Target[] = [];
  const leftAlone: string[] = [];
  for (const { name } of lab.config.machines) {
    const machine = kept.get(name);
    if (!machine || (options.machines && !options.machines.has(name))) {
      leftAlone.push(name);
      continue;
    }
    const id = `${CHECKPOINT_PREFIX}${checkpoint.name}`;
    const origin = options.exact ? { rootStage: machine.rootStage, rootKey: machine.rootKey } : { rootStage: id, rootKey: id };
    targets.push({ machine: name, stage: checkpoint.name, key: machine.rootKey ?? '', current: true, source: checkpointRoot(lab, checkpoint.name, name), ...origin, boot: machine.running });
  }
  return { targets, leftAlone };
}
