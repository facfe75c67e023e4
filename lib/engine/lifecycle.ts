import { rmSync } from 'node:fs';
import { acquireLock } from '../state/lock.js';
import { readState, writeState } from '../state/state.js';
import { hostDrivers } from './lab.js';
import type { BareLab, Lab } from './lab-types.js';
import { assertMachine, isRunning, releaseIdleBinds, startMachine, stopMachine } from './machines.js';
import { withSession } from './session.js';

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

/**
 * One machine's power, under the lab's lock (a scenario of lab test takes the lock its run holds):
 * `reboot` stops it in order and boots it again; `crash` cuts its power, its init killed at once
 * (SIGKILL), its root left as it was, half-written files and all; `start` boots it from its root
 * (a running one is left as it is) until it is up as lab up means it, its interfaces configured.
 * The state says what runs after each, for lab status and the next command.
 */
export async function power(lab: Lab, name: string, action: 'reboot' | 'crash' | 'start', options: { waitForLock?: boolean } = {}): Promise<void> {
  assertMachine(lab, name);
  await withSession(lab, `${action} ${name}`, { action: `${action} ${name}`, image: false, waitForLock: options.waitForLock }, async ({ state }) => {
    if (action === 'start' && isRunning(state, name)) return;
    if (action !== 'start') await stopMachine(lab, state, name, { hard: action === 'crash' });
    if (action === 'crash') return;
    await lab.network.setup(state);
    await startMachine(lab, state, name, { waitForNetwork: true });
  });
}
