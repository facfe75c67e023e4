import { assertBindSourceUnchanged } from '../config/binds.js';
import { InfraError, unknownName, UsageError } from '../errors.js';
import { Machine, type MachineExecutor } from '../machine-verbs.js';
import type { Readiness } from '../runtime/runtime.js';
import { isAlive } from '../state/process.js';
import { flushStates, type LabState, type MachineState, type ProcessRef, writeState } from '../state/state.js';
import type { BareLab, Lab } from './lab-types.js';
import { disklessOn } from '../config/diskless.js';

export function machineState(state: LabState, name: string): MachineState {
  return (state.machines[name] ??= {});
}

export function isRunning(state: LabState, name: string): boolean {
  return isAlive(state.machines[name]?.process);
}

export function assertMachine(lab: BareLab, name: string): void {
  const names = lab.config.machines.map((m) => m.name);
  if (!names.includes(name)) throw unknownName('machine', name, names);
}

/** Runs commands in a machine through its backend, wherever its current process is read from. */
export function machineExecutor(lab: BareLab, name: string, currentProcess: () => ProcessRef | undefined): MachineExecutor {
  return (argv, options) => {
    const process = currentProcess();
    if (!isAlive(process)) throw new InfraError(`machine ${name} is not running (start it with: lab up)`);
    const backend = lab.backendOf(name);
    if (!backend.exec) throw new UsageError(`${name} is ${backend.what}: lab runs no command in it; use its console (waitForConsoleText, sendConsole, lab console ${name})`);
    return backend.exec(lab, { name, process }, argv, { ...options, allowFailure: true });
  };
}

/** The assertion API over a running machine of this `lab up`. */
export function machineApi(lab: BareLab, state: LabState, name: string): Machine {
  return new Machine(name, machineExecutor(lab, name, () => state.machines[name]?.process));
}

/**
 * Boots the machine (see its backend) until it is up; with `waitForNetwork`, also until its
 * interfaces are configured. `lab up` asks for that; a restore does not, since a restored lab may
 * have no DHCP server yet.
 */
export async function startMachine(lab: Lab, state: LabState, name: string, options: { waitForNetwork: boolean }): Promise<Readiness> {
  // Boots that overlap record themselves in one write: the last to end writes what all recorded.
  booting++;
  try {
    return await lab.backendOf(name).start(lab, state, name, options);
  } finally {
    if (--booting === 0) flushStates();
  }
}

/** Machines booting in this process (startMachine). */
let booting = 0;

export async function stopMachine(lab: BareLab, state: LabState, name: string, options: { hard: boolean }): Promise<boolean> {
  const ms = state.machines[name];
  if (!isAlive(ms?.process)) return false;
  await lab.backendOf(name).stop(lab, { name, process: ms.process }, options);
  delete ms.process;
  // Its writable binds stay held: a restore or reboot starts it again in the same command, and
  // letting go would walk the whole source to disarm it each time. The command's end lets go (releaseIdleBinds).
  writeState(lab.dirs.stateFile, state);
  return true;
}

/**
 * Before a machine's binds are mounted (it boots, or a build step runs in its root): every source
 * still the directory that was checked, and the writable ones nosuid,nodev on the host, held for
 * the machine until the command that stopped it ends, or that built it and did not boot it (releaseIdleBinds).
 */
export async function prepareBinds(lab: BareLab, name: string): Promise<void> {
  const index = lab.config.machines.findIndex((m) => m.name === name);
  const { binds } = lab.config.machines[index]!;
  for (const [b, bind] of binds.entries()) assertBindSourceUnchanged(bind.source, `machines.${index}.binds.${b}.source`);
  await lab.nosuidBinds.hold(name, binds.filter((b) => !b.readonly).map((b) => b.source));
}

/** The writable bind sources held for machines that do not run (built, or failed to build or boot) let go of. */
export async function releaseIdleBinds(lab: BareLab, state: LabState): Promise<void> {
  await lab.nosuidBinds.release((machine) => !isRunning(state, machine));
}

/** The snapshot a machine's root was made from: the stage it was taken after, and its key. */
export interface RootOrigin {
  stage: string;
  key: string;
}

/**
 * Records where the machine's root came from, at once in the state file: the one writer of it.
 * Without a key the root is no stage's result, which lab up rebuilds; `undefined`: from no stage
 * at all (the base image, a root being swapped).
 */
export function recordRoot(lab: BareLab, state: LabState, name: string, origin: Partial<RootOrigin> | undefined): void {
  const ms = machineState(state, name);
  ms.rootStage = origin?.stage;
  ms.rootKey = origin?.key;
  writeState(lab.dirs.stateFile, state);
}

/** The root holds half a stage, or one whose check failed: lab up rebuilds it; its stage still tells what it grew from. */
export function invalidateRoot(lab: BareLab, state: LabState, name: string): void {
  recordRoot(lab, state, name, { stage: machineState(state, name).rootStage });
}

/**
 * Makes the machine's root a fresh writable copy of a snapshot (the machine must be stopped). The
 * diskless machines booted from it are stopped first: they run on the root being replaced.
 */
export async function resetRoot(lab: BareLab, state: LabState, name: string, source: string, origin?: RootOrigin): Promise<void> {
  await Promise.all(disklessOn(lab.config, name).map((machine) => stopMachine(lab, state, machine, { hard: true })));
  const root = lab.dirs.machineRoot(name);
  await lab.storage.remove(root);
  await lab.storage.snapshot(source, root, { readonly: false });
  recordRoot(lab, state, name, origin);
}
