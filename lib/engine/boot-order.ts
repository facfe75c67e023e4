import type { LabState } from '../state/state.js';
import type { Lab } from './lab-types.js';
import { startMachine } from './machines.js';

/** Machines that depend, directly or not, on any of `names`, and are not among them. */
export function dependentsOf(lab: Lab, names: ReadonlySet<string>): string[] {
  const found = new Set<string>();
  let grew = true;
  while (grew) {
    grew = false;
    for (const machine of lab.loaded.machines) {
      if (names.has(machine.name) || found.has(machine.name)) continue;
      if (machine.dependsOn.some((d) => names.has(d) || found.has(d))) {
        found.add(machine.name);
        grew = true;
      }
    }
  }
  return [...found];
}

/** A machine's job's end, as the jobs of the machines that depend on it wait for it: true when the job booted it; rejected when the job failed. */
export type After = (dependency: string) => Promise<boolean> | undefined;

/**
 * One job per machine, all at once, each waiting where it needs to (its boot, an online stage) for
 * the machines it depends on: `after(dependency)`, undefined for a machine that is not among
 * `names`. The one dependency-order scheduler of every boot: lab up's machine jobs, the reboots of
 * restore, the controller and the idempotence check. Settles once every job has: nothing still
 * boots when a command ends, a failure included. Cycles are refused by the config's validation.
 */
export async function inDependencyOrder(names: readonly string[], job: (name: string, after: After) => Promise<boolean>): Promise<PromiseSettledResult<boolean>[]> {
  const ends = new Map<string, Promise<boolean>>();
  const after: After = (dependency) => ends.get(dependency);
  // Each job starts on the next tick: `after` knows every machine's end by then.
  for (const name of names) ends.set(name, Promise.resolve().then(() => job(name, after)));
  return Promise.allSettled(ends.values());
}

/** Boots the machines, each once the ones it depends on (among them) are up; independent ones in parallel. The first failure is thrown once every boot has ended. */
export async function bootInOrder(lab: Lab, state: LabState, names: readonly string[], options: { waitForNetwork: boolean }): Promise<void> {
  const chosen = lab.loaded.machines.filter((m) => names.includes(m.name));
  const ended = await inDependencyOrder(
    chosen.map((m) => m.name),
    async (name, after) => {
      await Promise.all(chosen.find((m) => m.name === name)!.dependsOn.map(after));
      await startMachine(lab, state, name, options);
      return true;
    },
  );
  const failed = ended.find((end) => end.status === 'rejected');
  if (failed) throw failed.reason;
}
