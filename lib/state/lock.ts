import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { HostError } from '../errors.js';
import { isAlive, refOf } from './process.js';
import type { ProcessRef } from './state.js';
import { FAST, holdsWithin, poll, SLOW } from '../wait.js';

const TORN_LOCK_GRACE_MS = 2000;

interface LockOwner extends ProcessRef {
  command: string;
  since: string;
}

export interface Lock {
  release(): void;
  /** Held for us by the run we belong to (ENV_LOCK_HOLDER): not ours to hand on. */
  borrowed?: boolean;
}

/**
 * Set by a command that holds a lab's lock for the whole of its run (`lab test`) to `pid:startTime`:
 * the processes it starts (scenario workers restoring a stage) take the lock it holds instead of
 * waiting for it forever. Nobody else can: the holder must be that very process, alive.
 */
export const ENV_LOCK_HOLDER = 'LAB_LOCK_HOLDER';

/** Locks this process holds, released if it is interrupted (see cli/main.ts). */
const held = new Map<string, number>();

export function releaseHeldLocks(): string[] {
  const files = [...held.keys()];
  for (const file of files) if (readOwner(file)?.pid === process.pid) rmSync(file, { force: true });
  held.clear();
  return files;
}

/**
 * One `lab` command at a time per lab. The lock file names its owner; a lock whose owner
 * is gone (crashed, killed) is taken over, a live one is reported with who holds it.
 */
export async function acquireLock(file: string, command: string, options: { waitMs?: number; what?: string; lendable?: boolean } = {}): Promise<Lock> {
  // The lab's state directory is closed to other users: roots, logs and the pool are inside it.
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  let holder: LockOwner | undefined;
  return poll(`the lock ${file}`, async () => {
    const taken = await tryLock(file, command, options.lendable ?? true);
    if ('release' in taken) return taken;
    holder = taken;
    return undefined;
  }, {
    within: options.waitMs ?? 0,
    every: SLOW,
    onTimeout: () => new HostError(
      `${options.what ?? 'this lab'} is busy: 'lab ${holder!.command}' (pid ${holder!.pid}) has held its lock since ${holder!.since}`,
      'wait for it to finish, or pass --wait to queue behind it',
    ),
  });
}

/** One try: the lock, or the live process that holds it. A lock whose owner is gone is taken over; a `lendable` one held by the run we belong to is ours. */
async function tryLock(file: string, command: string, lendable: boolean): Promise<Lock | LockOwner> {
  const me = refOf(process.pid)!;
  const owner: LockOwner = { ...me, command, since: new Date().toISOString() };
  try {
    const fd = openSync(file, 'wx', 0o600);
    writeSync(fd, JSON.stringify(owner));
    closeSync(fd);
    held.set(file, me.pid);
    return {
      release: () => {
        held.delete(file);
        if (readOwner(file)?.pid === me.pid) rmSync(file, { force: true });
      },
    };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const holder = readOwner(file);
  const justMade = () => Date.now() - mtimeMs(file) < TORN_LOCK_GRACE_MS;
  if (!holder && justMade()) {
    // Its owner is still writing it: until it has, or had the time to.
    await holdsWithin(() => readOwner(file) !== undefined || !justMade(), { within: TORN_LOCK_GRACE_MS, every: FAST });
    return tryLock(file, command, lendable);
  }
  if (!holder || !isAlive(holder)) {
    rmSync(file, { force: true });
    return tryLock(file, command, lendable);
  }
  if (lendable && process.env[ENV_LOCK_HOLDER] === `${holder.pid}:${holder.startTime}`) return { release: () => undefined, borrowed: true }; // held for us by the run we belong to
  return holder;
}

function mtimeMs(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function readOwner(file: string): LockOwner | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as LockOwner;
  } catch {
    return undefined;
  }
}

/**
 * Runs `body` holding the lab's lock for all of it, for a command that runs many others (lab test,
 * lab bisect): what it calls, and the scenario workers it starts, take the lock it holds.
 */
export async function holdingLock<T>(file: string, command: string, body: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(file, command, { waitMs: 24 * 3600_000 });
  // Inside a run that holds the lock already (a scenario of lab test), its holder stays the holder.
  if (lock.borrowed) return body();
  const me = refOf(process.pid)!;
  process.env[ENV_LOCK_HOLDER] = `${me.pid}:${me.startTime}`;
  try {
    return await body();
  } finally {
    delete process.env[ENV_LOCK_HOLDER];
    lock.release();
  }
}
