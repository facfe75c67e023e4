import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isAlive, refOf } from './process.js';
import type { ProcessRef } from './state.js';

/**
 * Machines a command froze (cgroup v2 freezer) and must thaw: written before it freezes them,
 * removed once they are thawed. A command killed in between (kill -9 of `checkpoint save`) leaves
 * it, and the next lab command thaws them from it: the freezer state is on the host, not in the
 * killed process.
 */
export interface FrozenRecord {
  by: ProcessRef;
  command: string;
  machines: string[];
  cgroups: string[];
}

export function recordFrozen(file: string, command: string, machines: string[], cgroups: string[]): void {
  const record: FrozenRecord = { by: refOf(process.pid)!, command, machines, cgroups };
  writeFileSync(file, `${JSON.stringify(record)}\n`, { mode: 0o600 });
}

export function clearFrozen(file: string): void {
  rmSync(file, { force: true });
}

export function readFrozen(file: string): FrozenRecord | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as FrozenRecord;
  } catch {
    return undefined;
  }
}

/**
 * Thaws what a command that is gone left frozen, and says so; a live one (it holds the lab's
 * lock) is left alone. One file test when there is nothing to do.
 */
export function thawAbandoned(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  const record = readFrozen(file);
  if (record && isAlive(record.by)) return undefined;
  for (const cgroup of record?.cgroups ?? []) {
    try {
      writeFileSync(path.join(cgroup, 'cgroup.freeze'), '0');
    } catch {
      // the machine is gone, and its cgroup with it
    }
  }
  clearFrozen(file);
  return record?.machines.length
    ? `thawed ${record.machines.join(', ')}: 'lab ${record.command}' (pid ${record.by.pid}) froze them and ended without thawing them`
    : undefined;
}
