import { existsSync, readFileSync } from 'node:fs';
import { localAddresses, memoryOfMachines } from '../host/procs.js';
import { isAlive } from '../state/process.js';
import { acquireLock, type Lock } from '../state/lock.js';
import { readState } from '../state/state.js';
import { interruptedWork, repairInterrupted } from './recover.js';
import type { Lab } from './lab-types.js';
import { listSnapshots, type SnapshotInfo } from './snapshots.js';
import { planFor } from './planning.js';

export interface MachineStatus {
  name: string;
  state: 'running' | 'stopped' | 'not built';
  pid?: number;
  /** The configured address, or the DHCP lease the running machine holds. */
  address: string;
  stagesDone: string[];
  stagesPending: string[];
  /** The stage the machine's root was made from; a diskless machine's root, `<machine>:<path>`. */
  rootStage?: string;
  /** While it runs: the memory its processes use (sum of PSS). */
  memoryBytes?: number;
  snapshots: SnapshotInfo[];
}

export interface LabStatus {
  name: string;
  config: string;
  network: string;
  storage: string;
  machines: MachineStatus[];
  /** What interrupted commands had left, repaired now (when the lab was free and we are root). */
  recovered: string[];
  /** What interrupted commands left and is still there (the lab was busy: its command repairs it). */
  interrupted: string[];
}

/**
 * What is built, what runs, at which address, with how much memory; runs no command. It changes
 * nothing, but for what an interrupted command left in the pool, which it repairs when the lab is
 * free (taking its lock for that only) and reports otherwise.
 */
export async function status(lab: Lab): Promise<LabStatus> {
  const { recovered, interrupted } = await repairIfFree(lab);
  const state = readState(lab.dirs.stateFile);
  const plan = planFor(lab);
  const leaders = new Map<string, number>();
  for (const machine of plan.machines) {
    const process = state.machines[machine.name]?.process;
    const leader = isAlive(process) ? await lab.runtime.leaderPid({ name: machine.name, process }) : undefined;
    if (leader) leaders.set(machine.name, leader);
  }
  const memory = memoryOfMachines([...leaders.values()]);
  const machines = await Promise.all(
    plan.machines.map(async (machinePlan): Promise<MachineStatus> => {
      const ms = state.machines[machinePlan.name];
      const running = isAlive(ms?.process);
      const leader = leaders.get(machinePlan.name);
      const memoryBytes = leader ? memory.get(leader) : undefined;
      const configured = lab.topology.machines.find((m) => m.name === machinePlan.name)!.interfaces.map((i) => i.address);
      const seen = leader ? localAddresses(leader) : [];
      const address = (running ? (seen.length ? seen : ['dhcp (no lease)']) : configured).join(',');
      // A diskless machine has no root, stage or snapshot of its own: its root is a directory of another machine's.
      const { bootsFrom } = machinePlan;
      const stages = bootsFrom ? [] : [...machinePlan.stages, ...plan.controller];
      const rootAt = stages.findIndex((s) => s.name === ms?.rootStage && s.key === ms?.rootKey);
      const inRoot = (index: number) => rootAt < 0 || index <= rootAt;
      return {
        name: machinePlan.name,
        state: running ? 'running' : existsSync(lab.dirs.machineRoot(bootsFrom?.machine ?? machinePlan.name)) ? 'stopped' : 'not built',
        pid: running ? ms!.process!.pid : undefined,
        address,
        // A machine's own stages, then the lab's controller stages (each one of its snapshots); those
        // after the stage its root is from (restored to an earlier one) are lab up's to bring back.
        stagesDone: stages.filter((s, index) => s.action === 'cached' && inRoot(index)).map((s) => s.name),
        stagesPending: stages.filter((s, index) => s.action === 'build' || !inRoot(index)).map((s) => s.name),
        rootStage: bootsFrom ? `${bootsFrom.machine}:${bootsFrom.path}` : ms?.rootStage,
        memoryBytes,
        snapshots: bootsFrom ? [] : listSnapshots(lab, machinePlan.name, new Set(stages.map((s) => s.key))),
      };
    }),
  );
  // The machines the plan has not (vms): qemu's resident memory; the address is the DHCP server's to tell (no agent), so the MAC is shown.
  for (const vm of lab.topology.machines.filter((m) => !plan.machines.some((p) => p.name === m.name))) {
    const process = state.machines[vm.name]?.process;
    const running = isAlive(process);
    machines.push({
      name: vm.name,
      state: running ? 'running' : 'stopped',
      pid: running ? process.pid : undefined,
      address: vm.interfaces.map((i) => `dhcp (vm, mac ${i.mac})`).join(','),
      stagesDone: [],
      stagesPending: [],
      memoryBytes: running ? residentBytes(process.pid) : undefined,
      snapshots: [],
    });
  }
  return {
    name: lab.config.name,
    config: lab.configFile ?? 'default lab (embedded)',
    network: lab.network.describe(),
    storage: lab.storage.describe(),
    machines,
    recovered,
    interrupted,
  };
}

async function repairIfFree(lab: Lab): Promise<{ recovered: string[]; interrupted: string[] }> {
  const found = interruptedWork(lab);
  if (found.length === 0) return { recovered: [], interrupted: [] };
  if (process.getuid?.() !== 0) return { recovered: [], interrupted: found.map((f) => f.what) };
  let lock: Lock;
  try {
    lock = await acquireLock(lab.dirs.lockFile, 'status (repairing an interrupted command)');
  } catch {
    return { recovered: [], interrupted: found.map((f) => f.what) };
  }
  try {
    return { recovered: await repairInterrupted(lab), interrupted: [] };
  } finally {
    lock.release();
  }
}

function residentBytes(pid: number): number | undefined {
  try {
    const kib = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kib === undefined ? undefined : Number(kib) * 1024;
  } catch {
    return undefined;
  }
}
