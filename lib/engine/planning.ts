import { existsSync } from 'node:fs';
import { type Plan, type PlanOptions, planLab } from '../plan/plan.js';
import { currentBase } from '../image/base.js';
import { isContainer } from '../config/topology.js';
import type { Lab } from './lab-types.js';

/** The plan against the snapshots the pool holds: the pure planner, given what exists. Containers only: a vm has no stages. */
export function planFor(lab: Lab, options: PlanOptions = {}): Plan {
  return planLab({
    machines: lab.loaded.machines.filter((m) => isContainer(m.config)),
    baseKey: currentBase(lab).key,
    hasSnapshot: (machine, stage, key) => existsSync(lab.dirs.snapshot(machine, stage, key)),
    controller: lab.loaded.controller,
    options,
  });
}
