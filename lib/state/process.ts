import { readFileSync } from 'node:fs';
import { HostError } from '../errors.js';
import { FAST, holdsWithin } from '../wait.js';
import type { ProcessRef } from './state.js';

/**
 * Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot; undefined
 * when there is no such process or it has exited and only waits to be reaped (a zombie: the
 * host's PID 1 may take a second to reap a process whose parent has gone).
 */
export function processStartTime(pid: number): string | undefined {
  const fields = statFields(pid);
  return !fields || fields[0] === 'Z' || fields[0] === 'X' ? undefined : fields[19];
}

/** The fields of /proc/PID/stat after the command name: [0] the state, [1] the parent, [19] the start time; undefined when gone. */
export function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces; fields after it follow the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Sends a signal by pid; a process that is gone already is no error. */
export function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

export function refOf(pid: number): ProcessRef | undefined {
  const startTime = processStartTime(pid);
  return startTime === undefined ? undefined : { pid, startTime };
}

/** Alive and still the same process (not a reused pid). */
export function isAlive(ref: ProcessRef | undefined): ref is ProcessRef {
  return ref !== undefined && processStartTime(ref.pid) === ref.startTime;
}

export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Ends a process of the lab's: SIGTERM, then SIGKILL, each given `withinMs` to take; an error names `what` if it outlives both. */
export async function endProcess(process: ProcessRef, what: string, withinMs = 5000): Promise<void> {
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    if (!isAlive(process)) return;
    signalProcess(process.pid, signal);
    await holdsWithin(() => !isAlive(process), { within: withinMs, every: FAST });
  }
  if (isAlive(process)) throw new HostError(`${what} (pid ${process.pid}) did not end within ${(2 * withinMs) / 1000} s of SIGKILL`);
}
