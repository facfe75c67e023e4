import { existsSync } from 'node:fs';
import { assertBindSourceUnchanged } from '../config/binds.js';
import { InfraError, unknownName, UsageError } from '../errors.js';
import { tail } from '../exec.js';
import { Machine, type MachineExecutor } from '../machine-verbs.js';
import { type Readiness, StartRace } from '../runtime/runtime.js';
import { delay, SLOW } from '../wait.js';
import { isAlive } from '../state/process.js';
import { type LabState, type MachineState, type ProcessRef, writeState } from '../state/state.js';
import type { BareLab, Lab } from './lab.js';
import { disklessOn } from '../config/diskless.js';

/** Starts tried, SLOW apart (about 2 s in all), when the previous boot's veth is still being torn down by the kernel. */
const START_ATTEMPTS = 20;

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

/** Runs commands in a machine through the lab's runtime, wherever its current process is read from. */
export function machineExecutor(lab: BareLab, name: string, currentProcess: () => ProcessRef | undefined): MachineExecutor {
  return (argv, options) => {
    const process = currentProcess();
    if (!isAlive(process)) throw new InfraError(`machine ${name} is not running (start it with: lab up)`);
    if (lab.vms.has(name)) throw new UsageError(`${name} is a vm: lab runs no command in it; use its console (waitForConsoleText, sendConsole, lab console ${name})`);
    return lab.runtime.exec({ name, process }, argv, { ...options, allowFailure: true });
  };
}

/** The assertion API over a running machine of this `lab up`. */
export function machineApi(lab: BareLab, state: LabState, name: string): Machine {
  return new Machine(name, machineExecutor(lab, name, () => state.machines[name]?.process));
}

/**
 * Boots the machine from its root and waits until systemd reports it up; with `waitForNetwork`,
 * also until its zone interface is configured (address assigned, DHCP lease taken). `lab up`
 * asks for that; a restore does not, since a restored lab may have no DHCP server yet.
 */
export async function startMachine(lab: Lab, state: LabState, name: string, options: { waitForNetwork: boolean }): Promise<Readiness> {
  if (lab.vms.has(name)) return startVm(lab, state, name);
  // A diskless machine boots a directory of its root machine's root.
  const rootOwner = lab.config.machines.find((m) => m.name === name)?.root?.machine ?? name;
  const root = lab.dirs.machineRoot(rootOwner);
  if (!existsSync(root)) throw new InfraError(`machine ${rootOwner} has no root yet (build it with: lab up)`);
  // Loaded only for a diskless machine: lab exec never pays for it.
  const diskless = rootOwner === name ? undefined : (await import('./diskless.js')).disklessBoot(lab, name);
  await prepareBinds(lab, name);
  const ms = machineState(state, name);
  const started = Date.now();
  const timeoutS = lab.config.boot.timeoutSeconds;
  let readiness: Readiness | undefined;
  let process!: ProcessRef;
  for (let attempt = 1; !readiness; attempt++) {
    process = ms.process = await lab.runtime.start(name, diskless?.directory ?? root, diskless?.boot);
    writeState(lab.dirs.stateFile, state);
    try {
      readiness = await lab.runtime.waitReady({ name, process }, timeoutS * 1000);
    } catch (error) {
      if (!(error instanceof StartRace) || attempt >= START_ATTEMPTS) throw error;
      await delay(SLOW);
    }
  }
  if (!options.waitForNetwork) return recordBoot(lab, state, name, started, readiness);
  const online = await lab.runtime.exec(
    { name, process },
    ['/lib/systemd/systemd-networkd-wait-online', ...interfaceNames(lab, name).map((i) => `--interface=${i}`), `--timeout=${timeoutS}`],
    { allowFailure: true, timeout: (timeoutS + 5) * 1000 },
  );
  if (online.exitCode !== 0) {
    // The command's own words: "no address" and "could not ask" (too many open files, say) are different stories.
    const said = tail(`${online.stdout}${online.stderr}`, 10);
    throw new InfraError(`${name} booted but its interfaces (${interfaceNames(lab, name).join(', ')}) were not all configured within ${timeoutS} s (systemd-networkd-wait-online exit ${online.exitCode})${said ? `:\n${said}` : ''}`);
  }
  return recordBoot(lab, state, name, started, readiness);
}

/** A vm is up once qemu runs with its console open: what it boots is for its console to tell (waitForConsoleText). */
async function startVm(lab: BareLab, state: LabState, name: string): Promise<Readiness> {
  const started = Date.now();
  machineState(state, name).process = await lab.vms.start(name);
  writeState(lab.dirs.stateFile, state);
  return recordBoot(lab, state, name, started, { state: 'running', failedUnits: [], bootMs: 0 });
}

function interfaceNames(lab: BareLab, machine: string): string[] {
  return lab.topology.machines.find((m) => m.name === machine)!.interfaces.map((i) => i.name);
}

function recordBoot(lab: BareLab, state: LabState, name: string, started: number, readiness: Readiness): Readiness {
  const ms = machineState(state, name);
  ms.bootMs = Date.now() - started;
  writeState(lab.dirs.stateFile, state);
  return { ...readiness, bootMs: ms.bootMs };
}

export async function stopMachine(lab: BareLab, state: LabState, name: string, options: { hard: boolean }): Promise<boolean> {
  const ms = state.machines[name];
  if (!isAlive(ms?.process)) return false;
  if (lab.vms.has(name)) await lab.vms.stop(name, ms.process);
  else await lab.runtime.stop({ name, process: ms.process }, options);
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
