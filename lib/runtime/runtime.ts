import type { RunOptions, RunResult } from '../exec.js';
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

/** Boots, runs commands in, and stops machines. */
export interface Runtime {
  start(machine: string, root: string): Promise<ProcessRef>;
  waitReady(handle: MachineHandle, timeoutMs: number): Promise<Readiness>;
  exec(handle: MachineHandle, argv: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** An interactive login shell on the caller's terminal. */
  shell(handle: MachineHandle): Promise<number>;
  /** Orderly shutdown; `hard` kills at once (enough when the root is about to be discarded). */
  stop(handle: MachineHandle, options: { hard: boolean }): Promise<void>;
}
