import { existsSync, renameSync } from 'node:fs';
import { LabError } from '../errors.js';
import { topologicalOrder } from '../plan/graph.js';
import { FAILED_SUFFIX, parseStageRef, type PlannedStage, type StageRef } from '../plan/plan.js';
import { acquireLock } from '../state/lock.js';
import { type LabState, readState, writeState } from '../state/state.js';
import { assertUsable, type Lab } from './lab.js';
import { isRunning, machineState, startMachine, stopMachine } from './machines.js';
import { repairInterrupted } from './recover.js';
import { findStageSnapshot, stageSnapshot } from './snapshots.js';
import { planFor } from './planning.js';

export interface RestoreReport {
  restored: { machine: string; stage: string; key: string; current: boolean; bootMs: number }[];
  /** Running machines that depend on a restored one, rebooted so they see it afresh (DHCP, names). */
  rebooted: string[];
  /** Machines whose stages do not include the one asked for. */
  leftAlone: string[];
  durationMs: number;
}

interface Target {
  machine: string;
  stage: string;
  key: string;
  /** False when the stage's definition changed since: the newest snapshot of the stage is used. */
  current: boolean;
}

/** Which snapshot each machine goes back to (the pool must be open); fails if one is missing, before any machine is touched. */
function targetsOf(lab: Lab, ref: StageRef): { targets: Target[]; leftAlone: string[] } {
  const plan = planFor(lab);
  const targets: Target[] = [];
  const leftAlone: string[] = [];
  for (const machine of plan.machines) {
    const stage: PlannedStage | undefined = ref.machine && ref.machine !== machine.name ? undefined : machine.stages.find((s) => s.name === ref.stage);
    if (!stage) {
      leftAlone.push(machine.name);
      continue;
    }
    if (!ref.failed) {
      targets.push({ machine: machine.name, stage: stage.name, ...stageSnapshot(lab, machine.name, stage.name) });
      continue;
    }
    // A failed state: only the machines where the stage failed have one.
    const name = `${stage.name}${FAILED_SUFFIX}`;
    const failed = findStageSnapshot(lab, machine.name, name);
    if (failed) targets.push({ machine: machine.name, stage: name, ...failed });
    else leftAlone.push(machine.name);
  }
  if (ref.failed && targets.length === 0) {
    const what = `${ref.machine ? `${ref.machine}@` : ''}${ref.stage}`;
    throw new LabError(`no failed state of ${what} is kept (one is kept when a stage fails in lab up)`, 1, 'lab snapshots lists them');
  }
  return { targets, leftAlone };
}

/**
 * Replaces a stopped machine's root by a writable copy of a snapshot, atomically: the new root
 * is made under a temporary name first; the old one is moved aside, not deleted, until the new
 * one is in place. Returns the old root's path, to delete once the machine runs again.
 */
async function swapRoot(lab: Lab, state: LabState, target: Target): Promise<string | undefined> {
  const root = lab.dirs.machineRoot(target.machine);
  const incoming = `${root}.incoming`;
  const outgoing = `${root}.outgoing`;
  await lab.storage.remove(incoming);
  await lab.storage.remove(outgoing);
  try {
    await lab.storage.snapshot(lab.dirs.snapshot(target.machine, target.stage, target.key), incoming, { readonly: false });
  } catch (error) {
    throw new LabError(`restore of ${target.machine} failed; its root is as it was: ${(error as Error).message}`, 1);
  }
  const hadRoot = existsSync(root);
  // Until the renames are done and recorded, the root is of no known stage: if this process dies
  // between them, the next command rebuilds the root from its snapshot rather than trust it.
  const ms = machineState(state, target.machine);
  ms.rootKey = undefined;
  ms.rootStage = undefined;
  writeState(lab.dirs.stateFile, state);
  if (hadRoot) renameSync(root, outgoing);
  try {
    renameSync(incoming, root);
  } catch (error) {
    if (hadRoot) renameSync(outgoing, root);
    throw new LabError(`restore of ${target.machine} failed; its root is as it was: ${(error as Error).message}`, 1);
  }
  // A failed state is no stage's result: its key never matches a plan's, so lab up rebuilds it.
  ms.rootKey = target.stage.endsWith(FAILED_SUFFIX) ? `${target.key}${FAILED_SUFFIX}` : target.key;
  ms.rootStage = target.stage;
  writeState(lab.dirs.stateFile, state);
  return hadRoot ? outgoing : undefined;
}

/**
 * `lab restore <stage>` or `<machine>@<stage>`: each machine that has the stage is stopped, its
 * root replaced by the stage's snapshot, and booted again until running, in dependency order.
 */
export async function restore(lab: Lab, refText: string, options: { waitForLock?: boolean } = {}): Promise<RestoreReport> {
  const started = Date.now();
  const ref = parseStageRef(refText, lab.loaded.machines, { failed: true }); // an unknown name: exit 2, nothing touched
  await assertUsable(lab, 'restore', { image: false });
  const lock = await acquireLock(lab.dirs.lockFile, `restore ${refText}`, { waitMs: options.waitForLock ? 24 * 3600_000 : 0 });
  try {
    const state = readState(lab.dirs.stateFile);
    await lab.storage.open(); // a loopback pool is not mounted after a reboot
    await lab.runtime.stopUnrecorded(state);
    await repairInterrupted(lab);
    const { targets, leftAlone } = targetsOf(lab, ref);
    await lab.network.setup(state);
    const restoredNames = new Set(targets.map((t) => t.machine));
    const dependents = dependentsOf(lab, restoredNames).filter((name) => isRunning(state, name));
    // Dependents go down first, so that nothing runs against a machine mid-swap.
    await Promise.all(dependents.map((name) => stopMachine(lab, state, name, { hard: false })));
    await Promise.all(targets.map((t) => stopMachine(lab, state, t.machine, { hard: true })));
    const outgoing = await Promise.all(targets.map((t) => swapRoot(lab, state, t)));
    // The restored machines boot all at once (a restore waits for no network, so none waits for
    // another); the running machines that depend on them come back after, in dependency order.
    const bootMs = new Map<string, number>();
    await Promise.all(targets.map(async (t) => bootMs.set(t.machine, (await startMachine(lab, state, t.machine, { waitForNetwork: false })).bootMs)));
    await bootInOrder(lab, state, dependents);
    await Promise.all(outgoing.map((old) => (old ? lab.storage.remove(old) : undefined)));
    return {
      restored: targets.map((t) => ({ ...t, bootMs: bootMs.get(t.machine)! })),
      rebooted: dependents,
      leftAlone,
      durationMs: Date.now() - started,
    };
  } finally {
    lock.release();
  }
}

/** Machines that depend, directly or not, on any of `names`, and are not among them. */
function dependentsOf(lab: Lab, names: ReadonlySet<string>): string[] {
  const found = new Set<string>();
  let grew = true;
  while (grew) {
    grew = false;
    for (const machine of lab.loaded.machines) {
      if (names.has(machine.name) || found.has(machine.name)) continue;
      if (machine.dependsOn.some((d) => names.has(d) || found.has(d))) {
        found.add(machine.name);
        grew = true;
      }
    }
  }
  return [...found];
}

/** Boots the machines, each once the ones it depends on (among them) are up; independent ones in parallel. */
async function bootInOrder(lab: Lab, state: LabState, names: string[]): Promise<void> {
  const chosen = lab.loaded.machines.filter((m) => names.includes(m.name));
  const booted = new Map<string, Promise<void>>();
  for (const name of topologicalOrder(chosen.map((m) => ({ name: m.name, dependsOn: m.dependsOn.filter((d) => names.includes(d)) })))) {
    const machine = chosen.find((m) => m.name === name)!;
    const waitFor = machine.dependsOn.map((d) => booted.get(d)).filter((p): p is Promise<void> => p !== undefined);
    booted.set(
      name,
      Promise.all(waitFor).then(async () => {
        await startMachine(lab, state, name, { waitForNetwork: false });
      }),
    );
  }
  await Promise.all(booted.values());
}
