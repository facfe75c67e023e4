import { rmSync } from 'node:fs';
import { acquireLock } from '../state/lock.js';
import { readState, writeState } from '../state/state.js';
import { type BareLab, hostDrivers } from './lab.js';
import { releaseIdleBinds, stopMachine } from './machines.js';

/** Stops every machine (orderly, in parallel) and the lab's services; keeps roots, snapshots, network. */
export async function down(lab: BareLab): Promise<string[]> {
  const lock = await acquireLock(lab.dirs.lockFile, 'down');
  try {
    const state = readState(lab.dirs.stateFile);
    const stopped = await Promise.all(
      Object.keys(state.machines).map(async (name) => ((await stopMachine(lab, state, name, { hard: false })) ? name : undefined)),
    );
    await lab.network.stopServices(state);
    await lab.packageProxy.stop(state);
    await releaseIdleBinds(lab, state); // also what machines that were built but never booted held
    writeState(lab.dirs.stateFile, state);
    return stopped.filter((n): n is string => n !== undefined);
  } finally {
    lock.release();
  }
}

/** Removes everything the lab made on the host: each driver removes what it made, then the state directory goes. */
export async function destroy(lab: BareLab): Promise<void> {
  const lock = await acquireLock(lab.dirs.lockFile, 'destroy');
  try {
    const state = readState(lab.dirs.stateFile);
    for (const driver of hostDrivers(lab)) {
      await driver.destroy(state);
      writeState(lab.dirs.stateFile, state);
    }
  } finally {
    lock.release();
  }
  rmSync(lab.dirs.state, { recursive: true, force: true });
}
