import type { RunOptions, RunResult } from '../exec.js';
import type { ProcessRef } from '../state/state.js';

export interface Readiness {
  /** `running`, or `degraded` when some units failed (the machine is up all the same). */
  state: 'running' | 'degraded';
  failedUnits: string[];
  bootMs: number;
}

/** Boots, runs commands in, and stops machines. */
export interface Runtime {
  start(machine: string, root: string): Promise<ProcessRef>;
  waitReady(machine: string, process: ProcessRef, timeoutMs: number): Promise<Readiness>;
  exec(process: ProcessRef, argv: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** An interactive login shell on the caller's terminal. */
  shell(process: ProcessRef): Promise<number>;
  /** Orderly shutdown; `hard` kills at once (enough when the root is about to be discarded). */
  stop(process: ProcessRef, options: { hard: boolean }): Promise<void>;
}
