import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { HostError, UsageError, unknownName } from '../errors.js';
import { containerCgroup, setFrozen } from '../host/cgroups.js';
import { interrupted, onInterrupt } from '../interrupt.js';
import { clearFrozen, recordFrozen } from '../state/frozen.js';
import { acquireLock } from '../state/lock.js';
import { refOf } from '../state/process.js';
import type { ProcessRef } from '../state/state.js';
import type { BareLab, Lab } from './lab-types.js';
import { isRunning } from './machines.js';
import { withSession } from './session.js';
import { POOL_FULL_HINT, poolFull } from './space.js';

/** What a checkpoint holds: every machine's root at one moment, and what each was then. */
export interface Checkpoint {
  name: string;
  createdAt: string;
  machines: { name: string; running: boolean; rootStage?: string; rootKey?: string }[];
  /** Whether the running machines were frozen while their roots were taken (one consistent moment). */
  frozen: boolean;
  durationMs: number;
  /** For lab's own checkpoints (a bisect's way back): the process that made it and puts the lab back from it, while it lives. */
  owner?: ProcessRef;
}

const NAME = /^[a-z][a-z0-9-]{0,62}$/;
/** What the state records as the origin of a root restored from a checkpoint: no plan's key, so lab up rebuilds it. */
export const CHECKPOINT_PREFIX = 'checkpoint:';
/** Names lab itself uses while it works (bisect's way back). */
export const INTERNAL_PREFIX = 'lab-';

const checkpointDir = (lab: BareLab, name: string) => path.join(lab.dirs.checkpointsDir, name);
const metaFile = (lab: BareLab, name: string) => path.join(lab.dirs.checkpointsDir, `${name}.json`);
export const checkpointRoot = (lab: BareLab, name: string, machine: string) => path.join(checkpointDir(lab, name), machine);

export function listCheckpoints(lab: BareLab): Checkpoint[] {
  if (!existsSync(lab.dirs.checkpointsDir)) return [];
  return readdirSync(lab.dirs.checkpointsDir)
    .filter((entry) => entry.endsWith('.json'))
    .map((entry) => readCheckpoint(lab, entry.slice(0, -'.json'.length)))
    .filter((c): c is Checkpoint => c !== undefined)
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

/** A complete checkpoint (its metadata is written last), or undefined. */
export function readCheckpoint(lab: BareLab, name: string): Checkpoint | undefined {
  try {
    return JSON.parse(readFileSync(metaFile(lab, name), 'utf8')) as Checkpoint;
  } catch {
    return undefined;
  }
}

/** Stage names of every machine: a checkpoint may not take one (`lab restore <name>` would mean both). */
export function stageNames(lab: Lab): string[] {
  return [...new Set([...lab.loaded.machines.flatMap((m) => m.stages.map((s) => s.name)), ...lab.loaded.controller.map((s) => s.name)])];
}

export function assertNewCheckpointName(lab: Lab, name: string, options: { internal?: boolean } = {}): void {
  if (!NAME.test(name)) throw new UsageError(`checkpoint name '${name}': use lower-case letters, digits and '-', starting with a letter`);
  if (!options.internal && name.startsWith(INTERNAL_PREFIX)) throw new UsageError(`checkpoint name '${name}': names starting with '${INTERNAL_PREFIX}' are lab's own`);
  if (stageNames(lab).includes(name)) throw new UsageError(`checkpoint name '${name}' is the name of a stage: lab restore ${name} would mean both`, 'choose another name');
  if (lab.config.machines.some((m) => m.name === name)) throw new UsageError(`checkpoint name '${name}' is the name of a machine`, 'choose another name');
  if (readCheckpoint(lab, name)) throw new UsageError(`checkpoint '${name}' exists already`, `delete it first: lab checkpoint delete ${name}`);
}

/** The checkpoint, or exit 2 naming the ones there are. */
export function checkpointNamed(lab: BareLab, name: string): Checkpoint {
  const found = readCheckpoint(lab, name);
  if (!found) throw unknownName('checkpoint', name, listCheckpoints(lab).map((c) => c.name));
  return found;
}

/**
 * `lab checkpoint save <name>`: every machine's root, as it is now, kept read-only. Running
 * machines are frozen (cgroup v2 freezer) while their roots are taken, so that the checkpoint is
 * one moment of the whole lab, and thawed at once after, also when lab is interrupted.
 */
export async function saveCheckpoint(lab: Lab, name: string, options: { internal?: boolean } = {}): Promise<Checkpoint> {
  const started = Date.now();
  assertNewCheckpointName(lab, name, options);
  return withSession(lab, `checkpoint save ${name}`, { action: 'checkpoint save', image: false }, async ({ state }) => {
    const machines = lab.config.machines.map((m) => m.name).filter((m) => existsSync(lab.dirs.machineRoot(m)));
    const running = machines.filter((m) => isRunning(state, m));
    const cgroups: string[] = [];
    for (const machine of running) {
      const leader = await lab.runtime.leaderPid({ name: machine, process: state.machines[machine]!.process! });
      const cgroup = leader === undefined ? undefined : containerCgroup(leader);
      if (cgroup) cgroups.push(cgroup);
    }
    const frozen = cgroups.length === running.length && running.length > 0;
    const dir = checkpointDir(lab, name);
    const partial = `${dir}.partial`;
    const thaw = async () => {
      await setFrozen(cgroups, false);
      clearFrozen(lab.dirs.frozenFile);
    };
    try {
      mkdirSync(partial, { recursive: true });
      const unregister = onInterrupt(thaw);
      try {
        if (frozen) {
          recordFrozen(lab.dirs.frozenFile, `checkpoint save ${name}`, running, cgroups);
          await setFrozen(cgroups, true);
        }
        await Promise.all(machines.map((m) => lab.storage.snapshot(lab.dirs.machineRoot(m), path.join(partial, m), { readonly: true })));
      } finally {
        if (!interrupted()) {
          await thaw();
          unregister();
        }
      }
      renameSync(partial, dir);
      const checkpoint: Checkpoint = {
        name,
        createdAt: new Date().toISOString(),
        machines: machines.map((m) => ({ name: m, running: running.includes(m), rootStage: state.machines[m]?.rootStage, rootKey: state.machines[m]?.rootKey })),
        frozen,
        durationMs: Date.now() - started,
        ...(options.internal ? { owner: refOf(process.pid) } : {}),
      };
      // Last, and whole or not at all: the checkpoint exists from the rename on.
      writeFileSync(`${metaFile(lab, name)}.partial`, `${JSON.stringify(checkpoint, null, 2)}\n`);
      renameSync(`${metaFile(lab, name)}.partial`, metaFile(lab, name));
      return checkpoint;
    } catch (error) {
      if (interrupted()) throw error; // the next command repairs what is left (recover.ts)
      rmSync(`${metaFile(lab, name)}.partial`, { force: true });
      await removeTree(lab, partial);
      await removeTree(lab, dir);
      throw poolFullError(lab, error);
    }
  });
}

/** A write that failed for want of space is said as the pool being full, with what to do. */
function poolFullError(lab: BareLab, error: unknown): unknown {
  const message = error instanceof Error ? error.message : String(error);
  if ((error as NodeJS.ErrnoException)?.code !== 'ENOSPC' && !/No space left on device/i.test(message)) return error;
  return new HostError(poolFull(lab, Number.POSITIVE_INFINITY) ?? `the pool is full at ${lab.storage.root}`, POOL_FULL_HINT);
}

export async function deleteCheckpoint(lab: BareLab, name: string): Promise<void> {
  checkpointNamed(lab, name);
  const lock = await acquireLock(lab.dirs.lockFile, `checkpoint delete ${name}`);
  try {
    await lab.storage.open();
    rmSync(metaFile(lab, name), { force: true }); // first: a half-deleted checkpoint is no checkpoint
    await removeTree(lab, checkpointDir(lab, name));
  } finally {
    lock.release();
  }
}

/** A checkpoint's directory: each machine's root in it, then the directory. */
async function removeTree(lab: BareLab, dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  for (const machine of readdirSync(dir)) await lab.storage.remove(path.join(dir, machine));
  rmSync(dir, { recursive: true, force: true });
}
