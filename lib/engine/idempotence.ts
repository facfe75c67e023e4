import { diffTrees } from '../storage/treediff.js';
import { holdingLock } from '../state/lock.js';
import { readState } from '../state/state.js';
import type { Lab } from './lab.js';
import { isRunning, resetRoot, startMachine } from './machines.js';
import { planFor } from './planning.js';
import { reapplyStage, type Renderer, up } from './up.js';

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

export interface IdempotenceReport {
  machines: { machine: string; stages: { stage: string; changed: boolean; changes: string[]; durationMs: number }[] }[];
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
export async function checkIdempotence(lab: Lab, options: { machines?: readonly string[]; renderer?: Renderer } = {}): Promise<IdempotenceReport> {
  const started = Date.now();
  return holdingLock(lab.dirs.lockFile, 'up --idempotence', async () => {
    await up(lab, { renderer: options.renderer ?? 'silent', waitForLock: true, plan: { only: options.machines ?? [] } });
    const asked = options.machines ?? [];
    // The machines asked for (their dependencies are brought up, not re-applied), or every one.
    const targets = planFor(lab, { only: asked }).machines.filter((m) => asked.length === 0 || asked.includes(m.name));
    const machines: IdempotenceReport['machines'] = [];
    for (const machine of targets) {
      const state = readState(lab.dirs.stateFile);
      const wasRunning = isRunning(state, machine.name);
      const stages: IdempotenceReport['machines'][number]['stages'] = [];
      try {
        for (const stage of machine.stages) {
          const stageStarted = Date.now();
          await reapplyStage(lab, state, machine.name, stage.name);
          const changes = diffTrees(lab.dirs.snapshot(machine.name, stage.name, stage.key), lab.dirs.machineRoot(machine.name), ALWAYS_CHANGING);
          stages.push({ stage: stage.name, changed: changes.length > 0, changes, durationMs: Date.now() - stageStarted });
        }
      } finally {
        const last = machine.stages.at(-1)!;
        await resetRoot(lab, state, machine.name, lab.dirs.snapshot(machine.name, last.name, last.key), { stage: last.name, key: last.key });
        if (wasRunning) await startMachine(lab, state, machine.name, { waitForNetwork: true });
      }
      machines.push({ machine: machine.name, stages });
    }
    return { machines, idempotent: machines.every((m) => m.stages.every((s) => !s.changed)), ignored: ALWAYS_CHANGING, durationMs: Date.now() - started };
  });
}
