import type { HostDriver } from '../driver.js';
import { LabError } from '../errors.js';
import type { RunOptions, RunResult } from '../exec.js';
import { delay } from '../wait.js';
import type { ProcessRef } from '../state/state.js';

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
  start(machine: string, root: string): Promise<ProcessRef>;
  waitReady(handle: MachineHandle, timeoutMs: number): Promise<Readiness>;
  exec(handle: MachineHandle, argv: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** An interactive login shell on the caller's terminal. */
  shell(handle: MachineHandle): Promise<number>;
  /** Orderly shutdown; `hard` kills at once (enough when the root is about to be discarded). */
  stop(handle: MachineHandle, options: { hard: boolean }): Promise<void>;
}

/** The PATH commands get inside machines (the host's means nothing there). */
export const MACHINE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const POLL_MS = 25;

/** Asks a machine's systemd something; undefined while the machine has no systemd to ask yet. */
export type SystemQuery = (argv: readonly string[], timeoutMs: number) => Promise<RunResult | undefined>;

/**
 * Waits until the machine's systemd finishes booting (`is-system-running --wait`, retried while
 * its bus is not up: 'offline'), then lists the failed units. `alive` ends the wait early with
 * the error it returns when the machine died meanwhile.
 */
export async function awaitBoot(machine: string, query: SystemQuery, alive: () => LabError | undefined, timeoutMs: number): Promise<Readiness> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  let state = '';
  while (state !== 'running' && state !== 'degraded') {
    const died = alive();
    if (died) throw died;
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new LabError(`${machine} did not finish booting within ${timeoutMs} ms (state: ${state || 'no init process yet'})`, 1);
    state = (await query(['systemctl', 'is-system-running', '--wait'], remaining))?.stdout.trim() ?? '';
    if (state === 'maintenance' || state === 'stopping') throw new LabError(`${machine} booted into state '${state}'`, 1);
    if (state !== 'running' && state !== 'degraded') await delay(POLL_MS);
  }
  const failed = await query(['systemctl', 'list-units', '--failed', '--plain', '--no-legend', '--no-pager'], 30_000);
  return {
    state: state as Readiness['state'],
    failedUnits: (failed?.stdout ?? '').split('\n').map((line) => line.trim().split(/\s+/)[0]).filter(Boolean),
    bootMs: Date.now() - started,
  };
}
