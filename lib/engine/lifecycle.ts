import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { run } from '../exec.js';
import { MachinectlRuntime } from '../runtime/machinectl.js';
import { stopNspawn } from '../runtime/nspawn.js';
import { acquireLock } from '../state/lock.js';
import { isAlive, refOf } from '../state/process.js';
import type { ProcessRef } from '../state/state.js';
import { readState, writeState } from '../state/state.js';
import type { Lab } from './lab.js';
import { stopMachine } from './machines.js';

/** Stops every machine (orderly, in parallel) and the lab's services; keeps roots, snapshots, network. */
export async function down(lab: Lab): Promise<string[]> {
  const lock = await acquireLock(lab.dirs.lockFile, 'down');
  try {
    const state = readState(lab.dirs.stateFile);
    const stopped = await Promise.all(
      Object.keys(state.machines).map(async (name) => ((await stopMachine(lab, state, name, { hard: false })) ? name : undefined)),
    );
    await lab.network.stopServices(state);
    writeState(lab.dirs.stateFile, state);
    return stopped.filter((n): n is string => n !== undefined);
  } finally {
    lock.release();
  }
}

export interface StrayProcesses {
  /** Booted machines (nspawn --boot). */
  machines: ProcessRef[];
  /** Offline build steps (nspawn --pipe) of a `lab up` that was killed. */
  builds: ProcessRef[];
  /** The simulated internet's server (not an nspawn process). */
  servers: ProcessRef[];
}

/**
 * Processes of this lab that its state file may not know about (a crash between start and
 * write, a killed `lab up`), found in one pass over /proc. Matched on the lab's own paths
 * (roots inside its pool, its WAN server's ready file), never on a program name alone.
 */
export function strayProcesses(lab: Lab): StrayProcesses {
  const machinesDir = `--directory=${path.join(lab.dirs.pool, 'machines')}/`;
  const wanReady = path.join(lab.dirs.state, 'wan-server.ready');
  const found: StrayProcesses = { machines: [], builds: [], servers: [] };
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const isNspawn = argv[0]?.endsWith('systemd-nspawn') && argv.some((a) => a.startsWith(machinesDir));
    const isMachine = isNspawn && argv.includes('--boot');
    const isBuildStep = isNspawn && argv.includes('--pipe');
    const isWanServer = argv.includes(wanReady);
    const kind = isMachine ? found.machines : isBuildStep ? found.builds : isWanServer ? found.servers : undefined;
    const ref = kind ? refOf(Number(entry)) : undefined;
    if (ref) kind!.push(ref);
  }
  return found;
}

/** Removes everything the lab made on the host: processes, namespaces, bridge, nft table, mounts, loop device, subvolumes, state. */
export async function destroy(lab: Lab): Promise<void> {
  const lock = await acquireLock(lab.dirs.lockFile, 'destroy');
  try {
    const state = readState(lab.dirs.stateFile);
    await Promise.all(Object.keys(state.machines).map((name) => stopMachine(lab, state, name, { hard: true })));
    const strays = strayProcesses(lab);
    for (const stray of [...strays.machines, ...strays.builds]) await stopNspawn(stray, { hard: true });
    for (const server of strays.servers) if (isAlive(server)) process.kill(server.pid, 'SIGTERM');
    if (lab.runtime instanceof MachinectlRuntime) {
      for (const machine of lab.config.machines) for (const file of lab.runtime.files(machine.name)) rmSync(file, { force: true });
    }
    await lab.network.teardown(state);
    writeState(lab.dirs.stateFile, state);
    if (lab.storage.kind === 'btrfs' && !existsSync(lab.dirs.poolImage) && existsSync(lab.dirs.pool)) {
      // The pool is a directory on a btrfs host filesystem: its subvolumes must be deleted one by one.
      for (const group of ['machines', 'snapshots', 'images']) {
        const dir = path.join(lab.dirs.pool, group);
        if (!existsSync(dir)) continue;
        for (const entry of readdirSync(dir)) {
          const sub = path.join(dir, entry);
          const nested = group === 'snapshots' ? readdirSync(sub).map((s) => path.join(sub, s)) : [sub];
          for (const target of nested) await lab.storage.remove(target);
        }
      }
    }
    await lab.storage.close();
    if (existsSync(lab.dirs.pool)) await run(['rm', '-rf', '--one-file-system', '--', lab.dirs.pool], { timeout: 30 * 60_000 });
  } finally {
    lock.release();
  }
  rmSync(lab.dirs.state, { recursive: true, force: true });
}
