import type { Tool } from './host/prereq.js';
import type { LabState } from './state/state.js';

/**
 * What every driver that makes things on the host owns besides its own job (after
 * containerlab's runtimes): the tools it runs, what it left on the host, and removing it.
 * `lab destroy` and `lab doctor` are loops over the drivers.
 */
export interface HostDriver {
  /** Host commands it runs, for `lab doctor` and the checks of commands that touch the host. */
  tools(): Tool[];
  /** What it made on the host that is still there, one line each; empty after `destroy`. */
  leftovers(state: LabState): Promise<string[]>;
  /** Removes everything it made. Idempotent, and needs no tool that only building needs. */
  destroy(state: LabState): Promise<void>;
  /** The mode and why, for `lab doctor` and `lab status`. */
  describe(): string;
}
