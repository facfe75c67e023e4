import { unknownName, UsageError } from '../errors.js';
import { type Node, topologicalOrder, withDependencies } from './graph.js';
import { hashOf } from './key.js';

/** What defines one stage of one machine, as far as caching is concerned. */
export interface StageSpec {
  machine: string;
  name: string;
  packages: readonly string[];
  /** Hash of the stage's module source, the fixture files it uses and the lab values it declares. */
  definitionHash: string;
  /** Runs with its machine booted, talking to the machines it depends on: their keys are part of its own. */
  online?: boolean;
}

export interface MachineSpec extends Node {
  stages: readonly StageSpec[];
  /** A diskless machine: no stages, no root of its own; it boots this directory of another machine's root. */
  bootsFrom?: { machine: string; path: string };
}

/** `stage` (every machine that has it) or `machine@stage`; `<stage>.failed` names a stage's kept failed state. */
export interface StageRef {
  machine?: string;
  stage: string;
  /** The root as it was when the stage failed, not the stage's snapshot. */
  failed?: boolean;
}

/** The suffix of a failed state's name: `web@proxy.failed`. */
export const FAILED_SUFFIX = '.failed';

export interface PlanOptions {
  /** Build only these machines and what they depend on. */
  only?: readonly string[];
  /** Rebuild from this stage on, even when cached. */
  from?: StageRef;
  /** Stop after this stage. */
  until?: StageRef;
  /** Rebuild every stage. */
  noCache?: boolean;
}

export interface PlannedStage extends StageSpec {
  /** Identifies the snapshot taken after this stage: chained through every stage before it. */
  key: string;
  action: 'cached' | 'build';
}

export interface MachinePlan {
  name: string;
  dependsOn: readonly string[];
  stages: PlannedStage[];
  /** The controller stage whose snapshot the machine's root comes from, when one is cached: later than its own stages. */
  resumeFrom?: { stage: string; key: string };
  /** A diskless machine's root: a directory of another machine's, which it boots after (a dependency). */
  bootsFrom?: { machine: string; path: string };
}

/** A lab-wide stage run from the controller: its result is one snapshot per machine, all under its key. */
export interface ControllerSpec {
  name: string;
  /** Hash of its definition and of everything it reads. */
  definitionHash: string;
}

export interface PlannedControllerStage extends ControllerSpec {
  /** Chained through every machine's last key and the controller stages before it. */
  key: string;
  action: 'cached' | 'build';
}

export interface Plan {
  baseKey: string;
  /** Dependency order: a machine comes after every machine it depends on. */
  machines: MachinePlan[];
  /** After every machine's own stages, in order; cached only when every machine has its snapshot. */
  controller: PlannedControllerStage[];
}

export interface PlanInput {
  machines: readonly MachineSpec[];
  baseKey: string;
  hasSnapshot(machine: string, stage: string, key: string): boolean;
  controller?: readonly ControllerSpec[];
  options?: PlanOptions;
}

/** The cache key of a stage: what it is, built on what; for an online stage, also what it talked to. */
export function stageKey(spec: StageSpec, parentKey: string, dependencies?: Record<string, string>): string {
  return hashOf({ parent: parentKey, name: spec.name, packages: [...spec.packages], definition: spec.definitionHash, dependencies: spec.online ? dependencies : undefined });
}

/** `controller`: the names of the lab's controller stages, which every container has after its own. */
export function parseStageRef(text: string, machines: readonly MachineSpec[], options: { failed?: boolean; controller?: readonly string[] } = {}): StageRef {
  const failed = options.failed === true && text.endsWith(FAILED_SUFFIX);
  const ref = parseRef(failed ? text.slice(0, -FAILED_SUFFIX.length) : text, machines, text, options.controller ?? []);
  return failed ? { ...ref, failed } : ref;
}

function parseRef(text: string, machines: readonly MachineSpec[], asGiven: string, controller: readonly string[]): StageRef {
  const [first, second, ...rest] = text.split('@');
  if (rest.length > 0 || first === '' || second === '') throw new UsageError(`bad stage '${asGiven}': use <stage> or <machine>@<stage>`);
  if (second !== undefined) {
    const machine = machines.find((m) => m.name === first);
    if (!machine) throw unknownName('machine', first, machines.map((m) => m.name));
    const own = [...machine.stages.map((s) => s.name), ...(machine.stages.length > 0 ? controller : [])];
    if (!own.includes(second)) throw unknownName(`stage of ${first}`, second, own);
    return { machine: first, stage: second };
  }
  const all = [...new Set([...machines.flatMap((m) => m.stages.map((s) => s.name)), ...controller])];
  if (!all.includes(first)) throw unknownName('stage', first, all);
  return { stage: first };
}

function refIndex(ref: StageRef | undefined, machine: MachineSpec): number {
  if (!ref || (ref.machine && ref.machine !== machine.name)) return -1;
  return machine.stages.findIndex((s) => s.name === ref.stage);
}

/** Pure: which machines, in which order, and for each stage whether its snapshot can be reused. */
export function planLab(input: PlanInput): Plan {
  const options = input.options ?? {};
  const names = input.machines.map((m) => m.name);
  for (const name of options.only ?? []) if (!names.includes(name)) throw unknownName('machine', name, names);
  const order = topologicalOrder(input.machines);
  const selected = options.only?.length ? withDependencies(input.machines, options.only) : new Set(names);
  const byName = new Map(input.machines.map((m) => [m.name, m]));
  // Every machine's last key, in dependency order: an online stage's key includes those of the machines it depends on.
  const lastKeys = new Map<string, string>();
  const keysOf = (machine: MachineSpec): string[] => {
    const dependencies = Object.fromEntries(machine.dependsOn.map((d) => [d, lastKeys.get(d) ?? '']));
    let parent = input.baseKey;
    return machine.stages.map((spec) => (parent = stageKey(spec, parent, dependencies)));
  };
  const keys = new Map<string, string[]>();
  for (const name of order) {
    const machineKeys = keysOf(byName.get(name)!);
    keys.set(name, machineKeys);
    lastKeys.set(name, machineKeys.at(-1) ?? input.baseKey);
  }

  const controller = planController(input, order.filter((name) => !byName.get(name)!.bootsFrom), keys, lastKeys);
  const resume = controller.filter((s) => s.action === 'cached').at(-1);
  // `--until` a stage of a root machine stops it before its last stage: its diskless machines would boot a root it does not have yet.
  const cutShort = (machine: MachineSpec) => refIndex(options.until, machine) >= 0 && refIndex(options.until, machine) < machine.stages.length - 1;
  const machines = order
    .filter((name) => selected.has(name))
    .filter((name) => {
      const root = byName.get(name)!.bootsFrom?.machine;
      return !root || !cutShort(byName.get(root)!);
    })
    .map((name): MachinePlan => {
      const machine = byName.get(name)!;
      if (machine.bootsFrom) return { name, dependsOn: machine.dependsOn, stages: [], bootsFrom: machine.bootsFrom };
      const fromIndex = refIndex(options.from, machine);
      const untilIndex = refIndex(options.until, machine);
      const specs = untilIndex >= 0 ? machine.stages.slice(0, untilIndex + 1) : machine.stages;
      let rebuilding = false;
      const stages = specs.map((spec, index): PlannedStage => {
        const key = keys.get(name)![index]!;
        rebuilding ||= Boolean(options.noCache) || index === fromIndex || !input.hasSnapshot(name, spec.name, key);
        return { ...spec, key, action: rebuilding ? 'build' : 'cached' };
      });
      return { name, dependsOn: machine.dependsOn, stages, ...(resume ? { resumeFrom: { stage: resume.name, key: resume.key } } : {}) };
    });
  return { baseKey: input.baseKey, machines, controller };
}

/**
 * The controller stages' keys and actions. The first one's parent is every machine's last key (of
 * the machines with roots of their own: a diskless machine has none),
 * so a machine's rebuilt stage runs every play again; a controller stage is cached only when
 * every machine has its snapshot and everything before it is cached too. `--until` a machine's
 * stage runs none; `--until` a controller stage stops after it.
 */
function planController(input: PlanInput, order: readonly string[], keys: ReadonlyMap<string, string[]>, lastKeys: ReadonlyMap<string, string>): PlannedControllerStage[] {
  const specs = input.controller ?? [];
  const options = input.options ?? {};
  if (specs.length === 0 || options.until?.machine || (options.until && !specs.some((s) => s.name === options.until!.stage))) return [];
  const byName = new Map(input.machines.map((m) => [m.name, m]));
  const ownCached = !options.noCache && order.every((name) => byName.get(name)!.stages.every((spec, i) => input.hasSnapshot(name, spec.name, keys.get(name)![i]!)));
  const untilIndex = options.until ? specs.findIndex((s) => s.name === options.until!.stage) : specs.length - 1;
  let parent = hashOf({ machines: order.map((name) => [name, lastKeys.get(name)]) });
  // A machine's stage rebuilt on purpose (--from) makes new roots: every play runs on them again.
  const fromMachineStage = options.from !== undefined && (options.from.machine !== undefined || !specs.some((s) => s.name === options.from!.stage));
  let rebuilding = !ownCached || fromMachineStage;
  return specs.slice(0, untilIndex + 1).map((spec): PlannedControllerStage => {
    const key = (parent = hashOf({ parent, controller: spec.name, definition: spec.definitionHash }));
    rebuilding ||= options.from?.stage === spec.name;
    rebuilding ||= !order.every((name) => input.hasSnapshot(name, spec.name, key));
    return { ...spec, key, action: rebuilding ? 'build' : 'cached' };
  });
}
