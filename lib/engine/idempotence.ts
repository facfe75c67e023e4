import { StageError } from '../errors.js';
import { diffTrees } from '../storage/treediff.js';
import { holdingLock } from '../state/lock.js';
import { readState } from '../state/state.js';
import type { Lab } from './lab-types.js';
import { isRunning, resetRoot, startMachine, stopMachine } from './machines.js';
import { bootInOrder, dependentsOf } from './boot-order.js';
import { disklessOn } from '../config/diskless.js';
import { applyControllerStage } from './controller.js';
import type { HostRecap } from '../controller/recap.js';
import { planFor } from './planning.js';
import type { UpProgress } from './progress.js';
import { reapplyStage } from './machine-job.js';
import { up } from './up.js';

/**
 * Paths that change whenever anything runs, whatever the stage: logs, caches, package lists,
 * dpkg's backups, temporary files, systemd's clocks and seeds, compiled Python. They are no
 * change of the stage's (the README lists them).
 */
export const ALWAYS_CHANGING = [
  '/var/log',
  '/var/cache',
  '/var/lib/apt/lists',
  '/var/lib/dpkg/status-old',
  '/var/lib/dpkg/diversions-old',
  '/var/lib/dpkg/statoverride-old',
  '/tmp',
  '/var/tmp',
  '/run',
  '/var/lib/systemd/random-seed',
  '/var/lib/systemd/timers',
  '/var/lib/systemd/timesync',
  '/var/lib/systemd/catalog',
  '/var/lib/systemd/coredump',
  '/etc/ld.so.cache',
  '/usr/lib/python3/dist-packages/*/__pycache__',
  '/usr/lib/python3.*/*/__pycache__',
  '/var/lib/puppet',
  '/root/.ansible',
];

export interface ControllerIdempotence {
  stage: string;
  /** Ansible's recap of the second run, per host (empty for a command). */
  recap: HostRecap[];
  /** A playbook is judged by its recap, as Molecule does (no task changed, none failed); a command by its exit. */
  changed: boolean;
  exitCode: number;
  /** What differs in each machine's root from the stage's snapshot, both at rest: shown, not judged (services write as they run). */
  machines: { machine: string; changes: string[] }[];
  durationMs: number;
}

export interface IdempotenceReport {
  machines: { machine: string; stages: { stage: string; changed: boolean; changes: string[]; durationMs: number; /** It failed when applied again: not idempotent, and the machine's later stages are not tried. */ failed?: string }[] }[];
  /** The controller stages, each applied again on the whole lab at its snapshot (only when the whole lab is checked). */
  controller: ControllerIdempotence[];
  idempotent: boolean;
  ignored: readonly string[];
  durationMs: number;
}

/**
 * Molecule's idempotence check, for every kind of stage and judged from the file system: the lab
 * is brought up, then each stage of each machine (in dependency order) is applied a second time
 * on a copy of its own result, and what differs from that result is reported. Each machine is put
 * back to its last stage afterwards, running if it ran.
 */
export async function checkIdempotence(lab: Lab, options: { machines?: readonly string[]; plays?: readonly string[]; onProgress?: UpProgress } = {}): Promise<IdempotenceReport> {
  const started = Date.now();
  return holdingLock(lab.dirs.lockFile, 'up --idempotence', async () => {
    await up(lab, { onProgress: options.onProgress, waitForLock: true, plan: { only: options.machines ?? [] } });
    const asked = options.machines ?? [];
    // The machines asked for (their dependencies are brought up, not re-applied), or every one; none when plays are asked for.
    // A diskless machine has no stage to apply again.
    const targets = options.plays ? [] : planFor(lab, { only: asked }).machines.filter((m) => !m.bootsFrom && (asked.length === 0 || asked.includes(m.name)));
    const machines: IdempotenceReport['machines'] = [];
    for (const machine of targets) {
      const state = readState(lab.dirs.stateFile);
      const wasRunning = isRunning(state, machine.name);
      // Its root's copies stop them: they boot again on its root once it is put back.
      const disklessRunning = disklessOn(lab.config, machine.name).filter((name) => isRunning(state, name));
      // As a restore does, a vm goes down first and boots again once its server is back (downWhileItsServerIs).
      const vmsRunning = dependentsOf(lab, new Set([machine.name])).filter((name) => lab.backendOf(name).downWhileItsServerIs && isRunning(state, name));
      await Promise.all(vmsRunning.map((name) => stopMachine(lab, state, name, { hard: false })));
      const stages: IdempotenceReport['machines'][number]['stages'] = [];
      try {
        for (const stage of machine.stages) {
          const stageStarted = Date.now();
          const failed = await reapplyStage(lab, state, machine.name, stage.name).then(
            () => undefined,
            (error: unknown) => {
              if (!(error instanceof StageError)) throw error;
              return error.message;
            },
          );
          if (failed !== undefined) {
            stages.push({ stage: stage.name, changed: true, changes: [], durationMs: Date.now() - stageStarted, failed });
            break;
          }
          const changes = diffTrees(lab.dirs.snapshot(machine.name, stage.name, stage.key), lab.dirs.machineRoot(machine.name), ALWAYS_CHANGING);
          stages.push({ stage: stage.name, changed: changes.length > 0, changes, durationMs: Date.now() - stageStarted });
        }
      } finally {
        const last = machine.stages.at(-1)!;
        // An online stage that failed left its machine running on the copy: stopped before its root is put back.
        await stopMachine(lab, state, machine.name, { hard: true });
        await resetRoot(lab, state, machine.name, lab.dirs.snapshot(machine.name, last.name, last.key), { stage: last.name, key: last.key });
        if (wasRunning) await startMachine(lab, state, machine.name, { waitForNetwork: true });
        await bootInOrder(lab, state, [...disklessRunning, ...vmsRunning], { waitForNetwork: true });
      }
      machines.push({ machine: machine.name, stages });
    }
    const controller = asked.length === 0 ? await reapplyControllerStages(lab, options.plays) : [];
    const idempotent = machines.every((m) => m.stages.every((s) => !s.changed)) && controller.every((s) => !s.changed);
    return { machines, controller, idempotent, ignored: ALWAYS_CHANGING, durationMs: Date.now() - started };
  });
}

/**
 * Each controller stage (of `only`, or every one) applied again on the lab at its own snapshot: every container's root made
 * from the stage's snapshot and booted, the stage run, the machines stopped cleanly and their
 * roots compared with the snapshot. The lab is left at its last controller stage, running.
 */
async function reapplyControllerStages(lab: Lab, only?: readonly string[]): Promise<ControllerIdempotence[]> {
  const plan = planFor(lab);
  if (plan.controller.length === 0) return [];
  const asked = plan.controller.filter((s) => !only || only.includes(s.name));
  const state = readState(lab.dirs.stateFile);
  // The machines with roots of their own; the diskless ones (stopped with their roots) boot again with the lab's last roots.
  const names = plan.machines.filter((m) => !m.bootsFrom).map((m) => m.name);
  const rootsAt = async (stage: { name: string; key: string }, origin: { stage: string; key: string }, boot = names) => {
    await Promise.all(names.map((name) => stopMachine(lab, state, name, { hard: true })));
    await Promise.all(names.map((name) => resetRoot(lab, state, name, lab.dirs.snapshot(name, stage.name, stage.key), origin)));
    await bootInOrder(lab, state, boot, { waitForNetwork: true });
  };
  const reports: ControllerIdempotence[] = [];
  try {
    for (const planned of asked) {
      const stageStarted = Date.now();
      // A root that is no stage's result: its key matches no plan, so an interrupted check is rebuilt by lab up.
      await rootsAt(planned, { stage: `${planned.name} (applied again)`, key: `${planned.key}.again` });
      const loaded = lab.loaded.controller.find((s) => s.name === planned.name)!;
      const { result, outcome, timedOut } = await applyControllerStage(lab, state, loaded, lab.dirs.stageLog('controller', `${planned.name}.again`));
      await Promise.all(names.map((name) => stopMachine(lab, state, name, { hard: false })));
      const machines = names.map((name) => ({ machine: name, changes: diffTrees(lab.dirs.snapshot(name, planned.name, planned.key), lab.dirs.machineRoot(name), ALWAYS_CHANGING) }));
      const failed = timedOut || result.exitCode !== 0;
      const changed = failed || (loaded.config.playbook !== undefined && outcome.recap.some((r) => r.changed > 0 || r.failed > 0 || r.unreachable > 0));
      reports.push({ stage: planned.name, recap: outcome.recap, changed, exitCode: timedOut ? -1 : result.exitCode, machines, durationMs: Date.now() - stageStarted });
    }
  } finally {
    const last = plan.controller.at(-1)!;
    await rootsAt(last, { stage: last.name, key: last.key }, plan.machines.map((m) => m.name));
  }
  return reports;
}
