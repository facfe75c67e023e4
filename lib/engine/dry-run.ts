import { existsSync, readdirSync } from 'node:fs';
import type { Plan, PlanOptions } from '../plan/plan.js';
import { isAlive } from '../state/process.js';
import { type LabState, readState } from '../state/state.js';
import type { BareLab, Lab } from './lab-types.js';
import { planFor } from './planning.js';

/** What `lab up` would do to one machine, and why. */
export interface MachineForecast {
  machine: string;
  stages: { stage: string; action: 'cached' | 'build'; why?: string }[];
  /** What happens to it: built or rebooted on a new root, booted, or left as it is. */
  power: 'booted' | 'rebooted' | 'left running';
  why: string;
}

export interface Forecast {
  machines: MachineForecast[];
  controller: { stage: string; action: 'cached' | 'build' }[];
  /** Machines the pool or the state still has that the config no longer names. */
  removed: string[];
}

/** What the pool and the state hold now, as the forecast needs it. */
export interface Present {
  running: ReadonlySet<string>;
  /** The key of the snapshot each machine's root was made from. */
  rootKeys: ReadonlyMap<string, string | undefined>;
  /** The keys of the snapshots the pool holds of a machine's stage. */
  snapshotKeys(machine: string, stage: string): string[];
  /** Machines with a root or a state entry. */
  known: readonly string[];
}

/** Why a stage is built: the first one of a machine that is, then those after it. */
function whyBuilt(plan: Plan['machines'][number], index: number, present: Present, options: PlanOptions): string {
  const stage = plan.stages[index]!;
  if (options.noCache) return '--no-cache';
  if (index > 0 && plan.stages[index - 1]!.action === 'build') return `after ${plan.stages[index - 1]!.name}, which is built again`;
  if (options.from && options.from.stage === stage.name && (!options.from.machine || options.from.machine === plan.name)) return `--from ${options.from.machine ? `${options.from.machine}@` : ''}${options.from.stage}`;
  const others = present.snapshotKeys(plan.name, stage.name);
  return others.length
    ? `its key changed (${stage.key.slice(0, 12)}; the pool has ${others.map((k) => k.slice(0, 12)).join(', ')}): what defines it changed, its packages, fixtures, binds or the lab values it reads, or the base image`
    : 'never built';
}

/** The forecast of a plan against what exists: pure, for `lab up --dry-run`. */
export function forecast(plan: Plan, present: Present, options: PlanOptions, configured: readonly string[]): Forecast {
  const machines = plan.machines.map((m): MachineForecast => {
    const stages = m.stages.map((s, i) => ({ stage: s.name, action: s.action, ...(s.action === 'build' ? { why: whyBuilt(m, i, present, options) } : {}) }));
    const last = m.resumeFrom?.key ?? m.stages.at(-1)?.key;
    const running = present.running.has(m.name);
    const rootChanges = m.bootsFrom ? false : present.rootKeys.get(m.name) !== last || m.stages.some((s) => s.action === 'build');
    const why = m.bootsFrom
      ? `boots ${m.bootsFrom.machine}:${m.bootsFrom.path}`
      : rootChanges
        ? m.stages.some((s) => s.action === 'build')
          ? 'its root is built again'
          : `its root is made again from the snapshot of ${m.resumeFrom?.stage ?? m.stages.at(-1)?.name}`
        : 'its root is its last stage already';
    const power = running ? (rootChanges ? 'rebooted' : 'left running') : 'booted';
    return { machine: m.name, stages, power, why };
  });
  return {
    machines,
    controller: plan.controller.map((s) => ({ stage: s.name, action: s.action })),
    removed: present.known.filter((name) => !configured.includes(name)),
  };
}

/** `lab up --dry-run`: the plan against this lab's pool and state, nothing touched (no lock, nothing written). */
export function dryRun(lab: Lab, options: PlanOptions): Forecast {
  const plan = planFor(lab, options);
  const state = readState(lab.dirs.stateFile);
  const snapshots = (machine: string) => lab.dirs.snapshotsOf(machine);
  const present: Present = {
    running: new Set(Object.entries(state.machines).filter(([, m]) => isAlive(m.process)).map(([name]) => name)),
    rootKeys: new Map(Object.entries(state.machines).map(([name, m]) => [name, m.rootKey])),
    snapshotKeys: (machine, stage) =>
      existsSync(snapshots(machine))
        ? readdirSync(snapshots(machine))
            .filter((entry) => entry.startsWith(`${stage}@`) && !entry.includes('.'))
            .map((entry) => entry.slice(stage.length + 1))
        : [],
    known: knownMachines(lab, state),
  };
  return forecast(plan, present, options, lab.config.machines.map((m) => m.name));
}

/** The machines this lab has something of: a root in the pool, or an entry in the state (lab up removes those the config no longer names). */
export function knownMachines(lab: BareLab, state: LabState): string[] {
  const roots = existsSync(lab.dirs.machinesDir) ? readdirSync(lab.dirs.machinesDir).filter((entry) => !entry.includes('.')) : [];
  return [...new Set([...roots, ...Object.keys(state.machines)])].sort();
}
