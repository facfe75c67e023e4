import { acquireLock } from '../state/lock.js';
import { type LabState, readState } from '../state/state.js';
import { assertUsable, ensureDirs } from './lab.js';
import type { BareLab } from './lab-types.js';
import { releaseIdleBinds } from './machines.js';
import { repairInterrupted } from './recover.js';

export interface SessionOptions {
  /** The command, as the host checks name it ('lab up must run as root'). */
  action: string;
  /** Whether it builds the base image: the image source must then be one the host can give. */
  image: boolean;
  /** Queue behind another command holding the lock instead of failing at once (--wait). */
  waitForLock?: boolean;
}

export interface Session {
  state: LabState;
  /** What interrupted commands had left in the pool, finished or undone. */
  recovered: string[];
}

/** How long --wait queues behind the lab's lock. */
const LOCK_QUEUE_MS = 24 * 3600_000;

/**
 * The prologue of every command that changes a lab's machines or pool, in one order, then `body`
 * holding the lab's lock (released after it, whatever happens):
 * - the host checks, before anything exists (exit 2 or 3);
 * - the lock, under `label` ('lab restore proxy' is what a second command is told holds it);
 * - the lab's directories, and its state;
 * - build steps of a killed `lab up`, which would still be writing into roots, ended;
 * - machines a killed command started and never recorded, stopped;
 * - only then the pool opened (a loopback pool is not mounted after a reboot) and what interrupted
 *   commands left in it repaired: nothing still runs on a root that a repair renames or deletes;
 * - link faults whose scenario worker died (a killed lab test) undone;
 * - after the body, the nosuid binds held for machines that do not run let go of.
 */
export async function withSession<T>(lab: BareLab, label: string, options: SessionOptions, body: (session: Session) => Promise<T>): Promise<T> {
  await assertUsable(lab, options.action, { image: options.image });
  const lock = await acquireLock(lab.dirs.lockFile, label, { waitMs: options.waitForLock ? LOCK_QUEUE_MS : 0 });
  try {
    ensureDirs(lab);
    const state = readState(lab.dirs.stateFile);
    await lab.buildSteps.destroy();
    await lab.runtime.stopUnrecorded(state);
    await lab.storage.open();
    const recovered = [...(await repairInterrupted(lab)), ...(await lab.faults.clearAbandoned())];
    // What machines that do not run held at the end (a build that failed, or that no boot followed) is let go of, also on failure.
    const result = await body({ state, recovered }).catch(async (error: unknown) => {
      await releaseIdleBinds(lab, state).catch(() => undefined); // the body's error is the story; what is left, lab doctor lists
      throw error;
    });
    await releaseIdleBinds(lab, state);
    return result;
  } finally {
    lock.release();
  }
}
