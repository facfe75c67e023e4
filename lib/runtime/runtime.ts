import { randomUUID } from 'node:crypto';
import type { HostDriver } from '../driver.js';
import { InfraError, TimeoutError } from '../errors.js';
import { CommandError, type RunOptions, type RunResult } from '../exec.js';
import { NORMAL, poll } from '../wait.js';
import type { LabState, ProcessRef } from '../state/state.js';
import type { DisklessBoot } from './nspawn-process.js';
import type { ExpectedInterface } from './routes.js';

/**
 * A start that failed on something the kernel is still tearing down: the veth of the machine's
 * previous boot, whose network namespace the kernel frees a moment after its last process ends.
 * Trying again shortly is the answer.
 */
export class StartRace extends InfraError {}

export interface Readiness {
  /** `running`, or `degraded` when some units failed (the machine is up all the same). */
  state: 'running' | 'degraded';
  failedUnits: string[];
  bootMs: number;
}

/** A running machine: its name in the lab and the process that stands for it. */
export interface MachineHandle {
  name: string;
  process: ProcessRef;
}

/** Boots, runs commands in, and stops machines; what it left on the host (machine processes, files) is its own to list and remove. */
export interface Runtime extends HostDriver {
  /** Boots `root`; with `diskless`, read-only and shared (see DisklessBoot). */
  start(machine: string, root: string, diskless?: DisklessBoot): Promise<ProcessRef>;
  waitReady(handle: MachineHandle, timeoutMs: number): Promise<Readiness>;
  exec(handle: MachineHandle, argv: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** An interactive login shell on the caller's terminal. */
  shell(handle: MachineHandle): Promise<number>;
  /**
   * Stops machine processes of this lab that the state does not record (a command killed between
   * starting a machine and writing it down): they would hold a root about to be replaced. Returns
   * the machines it stopped.
   */
  stopUnrecorded(state: LabState): Promise<string[]>;
  /** The machine's init (PID 1 inside), as a host pid, while it runs. */
  leaderPid(handle: MachineHandle): Promise<number | undefined>;
  /** Which of `expected` are not configured yet (no address, or no default route where one is due); undefined when it does not run. */
  unconfiguredInterfaces(handle: MachineHandle, expected: readonly ExpectedInterface[]): Promise<string[] | undefined>;
  /** Orderly shutdown; `hard` kills at once (enough when the root is about to be discarded). */
  stop(handle: MachineHandle, options: { hard: boolean }): Promise<void>;
}

/** The PATH commands get inside machines (the host's means nothing there). */
export const MACHINE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Runs "$@" inside the machine and, when it gets SIGTERM (its parent-death signal: lab was killed,
 * even by SIGKILL, and nsenter with it), ends every process that carries the command's tag, also
 * those that left its process group. A constant script: the command comes as arguments, never as
 * shell text. fd 3 keeps stdin, which sh would give an asynchronous command as /dev/null.
 */
export const SUPERVISOR = [
  'setpriv',
  '--pdeathsig',
  'TERM',
  '/bin/sh',
  '-c',
  [
    'trap \'for p in /proc/[0-9]*; do [ "${p#/proc/}" = "$$" ] && continue;',
    'tr "\\000" "\\n" < "$p/environ" 2>/dev/null | grep -qxF "LAB_EXEC=$LAB_EXEC" && kill -9 "${p#/proc/}"; done; exit 143\' TERM;',
    'exec 3<&0; "$@" <&3 3<&- & wait $!',
  ].join(' '),
  'lab-exec',
];

/** An environment entry unique to one command run in a machine, inherited by all it starts. */
export function execTag(): string {
  return `LAB_EXEC=${randomUUID()}`;
}

/** Asks a machine's systemd something; undefined while the machine has no systemd to ask yet. */
export type SystemQuery = (argv: readonly string[], timeoutMs: number) => Promise<RunResult | undefined>;

/** One query may block (`--wait`) this long before it is ended and asked again. */
const QUERY_SLICE_MS = 15_000;

/**
 * Waits until the machine's systemd finishes booting (`is-system-running --wait`, retried while
 * its bus is not up: 'offline'), then lists the failed units when it says 'degraded' ('running'
 * means none failed: a restore waits for no query it does not need). One deadline holds whatever systemd
 * does: every query is bounded (and ended whole in the machine when it is not), and on expiry the
 * error names the jobs still running and the console's tail. `alive` ends the wait early with the
 * error it returns when the machine died meanwhile.
 */
export async function awaitBoot(
  machine: string,
  query: SystemQuery,
  alive: () => InfraError | undefined,
  timeoutMs: number,
  consoleTail: () => string,
): Promise<Readiness> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  let state = '';
  await poll(`${machine} to boot`, async () => {
    const died = alive();
    if (died) throw died;
    // Never beyond the deadline, but at least a moment for the last try.
    const slice = Math.max(1, Math.min(deadline - Date.now(), QUERY_SLICE_MS));
    state = (await queryOrUndefined(query, ['systemctl', 'is-system-running', '--wait'], slice))?.stdout.trim() ?? '';
    if (state === 'maintenance' || state === 'stopping') throw new InfraError(`${machine} booted into state '${state}'\n${consoleTail()}`);
    return state === 'running' || state === 'degraded';
  }, { within: timeoutMs, every: NORMAL, onTimeout: () => bootTimeout(machine, query, state, timeoutMs, consoleTail) });
  const failed = state === 'degraded' ? await queryOrUndefined(query, ['systemctl', 'list-units', '--failed', '--plain', '--no-legend', '--no-pager'], 10_000) : undefined;
  return {
    state: state as Readiness['state'],
    failedUnits: (failed?.stdout ?? '').split('\n').map((line) => line.trim().split(/\s+/)[0]).filter(Boolean),
    bootMs: Date.now() - started,
  };
}

/** A query that timed out (and was ended) is an answer of its own: none yet. */
async function queryOrUndefined(query: SystemQuery, argv: readonly string[], timeoutMs: number): Promise<RunResult | undefined> {
  try {
    return await query(argv, timeoutMs);
  } catch (error) {
    if (error instanceof CommandError && error.timedOut) return undefined;
    throw error;
  }
}

async function bootTimeout(machine: string, query: SystemQuery, state: string, timeoutMs: number, consoleTail: () => string): Promise<TimeoutError> {
  const jobs = (await queryOrUndefined(query, ['systemctl', 'list-jobs', '--no-legend', '--no-pager'], 5000))?.stdout.trim();
  return new TimeoutError(
    [
      `${machine} did not finish booting within ${timeoutMs / 1000} s (state: ${state || 'no answer from its systemd'})`,
      `jobs still running: ${jobs ? `\n${jobs}` : 'none listed'}`,
      `console (tail):\n${consoleTail()}`,
    ].join('\n'),
    `the machine is left running: look inside with 'lab shell ${machine}'`,
  );
}
