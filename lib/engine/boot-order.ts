import { topologicalOrder } from '../plan/graph.js';
import type { LabState } from '../state/state.js';
import type { Lab } from './lab.js';
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

/** Boots the machines, each once the ones it depends on (among them) are up; independent ones in parallel. */
export async function bootInOrder(lab: Lab, state: LabState, names: readonly string[], options: { waitForNetwork: boolean }): Promise<void> {
  const chosen = lab.loaded.machines.filter((m) => names.includes(m.name));
  const booted = new Map<string, Promise<void>>();
  for (const name of topologicalOrder(chosen.map((m) => ({ name: m.name, dependsOn: m.dependsOn.filter((d) => names.includes(d)) })))) {
    const machine = chosen.find((m) => m.name === name)!;
    const waitFor = machine.dependsOn.map((d) => booted.get(d)).filter((p): p is Promise<void> => p !== undefined);
    booted.set(
      name,
      Promise.all(waitFor).then(async () => {
        await startMachine(lab, state, name, options);
      }),
    );
  }
  await Promise.all(booted.values());
}
