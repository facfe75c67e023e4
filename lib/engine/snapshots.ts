import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { UsageError } from '../errors.js';
import { FAILED_SUFFIX, type MachinePlan, type Plan } from '../plan/plan.js';
import type { Lab } from './lab-types.js';
import { planFor } from './planning.js';

export interface SnapshotInfo {
  /** The stage's name; `<stage>.failed` for the root as it was when the stage failed. */
  stage: string;
  key: string;
  /** ISO time; undefined when its metadata file is missing (it then sorts as the oldest). */
  createdAt?: string;
  /** True when the stage's current definition would reuse this snapshot. */
  current: boolean;
}

export interface SnapshotReport {
  machine: string;
  snapshots: (SnapshotInfo & { exclusiveBytes?: number })[];
}

/** Beside each snapshot: when it was taken (a btrfs snapshot inherits its source's creation time). */
const metaFile = (snapshot: string) => `${snapshot}.json`;

/** Takes the read-only snapshot of a machine's root after a stage; visible only once complete. */
export async function takeSnapshot(lab: Lab, machine: string, stage: string, key: string): Promise<void> {
  const target = lab.dirs.snapshot(machine, stage, key);
  await removeSnapshot(lab, target);
  await lab.storage.snapshot(lab.dirs.machineRoot(machine), target, { readonly: true });
  markCreated(target);
}

/** Records when a snapshot came into the pool: taken now, or imported (lab cache pull). */
export function markCreated(snapshot: string): void {
  writeFileSync(metaFile(snapshot), `${JSON.stringify({ createdAt: new Date().toISOString() })}\n`);
}

/**
 * Keeps a machine's root as it is when a stage fails, read-only, as `<stage>.failed` (never a cache
 * entry: no plan looks it up). A running machine's root is taken as it is. Returns the name to
 * restore it by, or undefined when it could not be kept (the stage's failure is the story then).
 */
export async function keepFailedState(lab: Lab, machine: string, stage: string, key: string): Promise<string | undefined> {
  try {
    await takeSnapshot(lab, machine, `${stage}${FAILED_SUFFIX}`, key);
    return `${machine}@${stage}${FAILED_SUFFIX}`;
  } catch {
    return undefined;
  }
}

export async function removeSnapshot(lab: Lab, snapshot: string): Promise<void> {
  await lab.storage.remove(snapshot);
  rmSync(metaFile(snapshot), { force: true });
}

function createdAt(snapshot: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(metaFile(snapshot), 'utf8')) as { createdAt: string }).createdAt;
  } catch {
    return undefined;
  }
}

/** Oldest first; a snapshot of unknown age counts as the oldest, so it is never taken for the newest. */
export function byAge(a: { createdAt?: string }, b: { createdAt?: string }): number {
  // ISO times order as strings; localeCompare would load ICU's collator, ~10 ms of every lab status.
  const [x, y] = [a.createdAt ?? '', b.createdAt ?? ''];
  return x < y ? -1 : x > y ? 1 : 0;
}

/** A machine's complete snapshots (a partial one never matches), oldest first. */
export function listSnapshots(lab: Lab, machine: string, currentKeys: ReadonlySet<string>): SnapshotInfo[] {
  const dir = lab.dirs.snapshotsOf(machine);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((entry) => /^([a-z][a-z0-9-]*(?:\.failed)?)@([0-9a-f]+)$/.exec(entry))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ stage: m[1], key: m[2], createdAt: createdAt(lab.dirs.snapshot(machine, m[1], m[2])), current: currentKeys.has(m[2]) }))
    .sort(byAge);
}

/**
 * The snapshot to use for a machine's stage: the one of its current definition, otherwise the
 * newest of an earlier definition (`current: false`). Fails when the stage was never built.
 */
export function stageSnapshot(lab: Lab, machine: string, stage: string): { key: string; current: boolean } {
  const found = findStageSnapshot(lab, machine, stage);
  if (!found) throw new UsageError(`no snapshot of ${machine}@${stage} yet`, `build it with: lab up ${machine}`);
  return found;
}

/** As stageSnapshot, undefined when there is none; `stage` may be `<stage>.failed`. */
export function findStageSnapshot(lab: Lab, machine: string, stage: string): { key: string; current: boolean } | undefined {
  const stageName = stage.endsWith(FAILED_SUFFIX) ? stage.slice(0, -FAILED_SUFFIX.length) : stage;
  const plan = planFor(lab);
  const planned = plan.machines.find((m) => m.name === machine)?.stages.find((s) => s.name === stageName) ?? plan.controller.find((s) => s.name === stageName);
  if (planned && existsSync(lab.dirs.snapshot(machine, stage, planned.key))) return { key: planned.key, current: true };
  const newest = listSnapshots(lab, machine, new Set()).filter((s) => s.stage === stage).at(-1);
  return newest && { key: newest.key, current: false };
}

/** Every stage snapshot of every machine, with the space only it holds (measured in one go). */
export async function snapshotsReport(lab: Lab): Promise<SnapshotReport[]> {
  const plan = planFor(lab);
  const listed = plan.machines.map((machine) => ({ machine: machine.name, snapshots: listSnapshots(lab, machine.name, currentKeys(plan, machine)) }));
  const paths = listed.flatMap((m) => m.snapshots.map((s) => lab.dirs.snapshot(m.machine, s.stage, s.key)));
  const sizes = await lab.storage.exclusiveBytes(paths);
  let index = 0;
  return listed.map((m) => ({ machine: m.machine, snapshots: m.snapshots.map((s) => ({ ...s, exclusiveBytes: sizes[index++] })) }));
}

/** The keys the plan would use for a machine: its own stages' and the controller stages'. */
function currentKeys(plan: Plan, machine: MachinePlan): Set<string> {
  return new Set([...machine.stages, ...plan.controller].map((s) => s.key));
}

/** Snapshots of earlier definitions of each stage beyond the newest `keep`: what pruning deletes. */
export function prunable(lab: Lab, keep: number): string[] {
  const plan = planFor(lab);
  return plan.machines.flatMap((machine) => {
    const old = listSnapshots(lab, machine.name, currentKeys(plan, machine)).filter((s) => !s.current);
    return [...new Set(old.map((s) => s.stage))].flatMap((stage) =>
      old
        .filter((s) => s.stage === stage)
        .reverse() // newest first
        .slice(keep)
        .map((s) => lab.dirs.snapshot(machine.name, s.stage, s.key)),
    );
  });
}
