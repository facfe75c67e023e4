import { readlinkSync } from 'node:fs';
import { HostError } from '../errors.js';
import type { Tool } from '../host/prereq.js';
import { childrenOf, isAlive, signalProcess, statFields } from '../state/process.js';
import type { ProcessRef } from '../state/state.js';
import { FAST, holdsWithin } from '../wait.js';

/**
 * What an nspawn process is, for the two ways lab runs one: booted machines (nspawn.ts) and build
 * steps on stopped roots (offline.ts). Its argv, its binds, the tools, its container's PID 1, and
 * how it is stopped.
 */

export const NSPAWN_TOOLS: Tool[] = [
  { command: 'systemd-nspawn', debianPackage: 'systemd-container', why: 'runs the machines' },
  { command: 'nsenter', debianPackage: 'util-linux', why: 'runs commands inside machines and namespaces' },
];

export interface Bind {
  source: string;
  target: string;
  readonly?: boolean;
}

/**
 * A bind as nspawn reads it (its --bind option, a .nspawn file's Bind=): never recursive
 * (`norbind`: what is mounted under a source, other labs' pools say, stays out of the machine, and
 * unpinned), colons and backslashes in paths escaped.
 */
export function bindSpec(bind: Bind): string {
  return `${escapePath(bind.source)}:${escapePath(bind.target)}:norbind`;
}

/** A path in an nspawn option that separates its fields with colons. */
const escapePath = (p: string) => p.replaceAll('\\', '\\\\').replaceAll(':', '\\:');

/** nspawn's options for binds: read-only ones with --bind-ro. */
export function bindOptions(binds: readonly Bind[]): string[] {
  return binds.map((b) => `--bind${b.readonly ? '-ro' : ''}=${bindSpec(b)}`);
}

/**
 * How a diskless machine boots the directory it shares: read-only with a tmpfs over each of `tmpfs`,
 * or (without it) under a volatile overlay whose writes live in memory; its identity's files bound
 * read-only over the shared root's.
 */
export interface DisklessBoot {
  machineId: string;
  identity: readonly Bind[];
  tmpfs?: readonly string[];
}

/** nspawn's options for a diskless boot; the machine-id is also the container's UUID. */
export function disklessOptions(boot: DisklessBoot): string[] {
  const writes = boot.tmpfs ? ['--read-only', ...boot.tmpfs.map((dir) => `--tmpfs=${escapePath(dir)}`)] : ['--volatile=overlay'];
  return [...writes, `--uuid=${boot.machineId}`, ...bindOptions(boot.identity)];
}

/**
 * The arguments of its init, after nspawn's options: systemd takes the machine-id from its command
 * line before any file of the root (a shared root's /var/lib/dbus/machine-id would otherwise give
 * every machine the same). A bind over /etc/machine-id would do it too, but under an overlay
 * systemd-machine-id-commit then fails: the id it finds mounted there is on no tmpfs.
 */
export function disklessInit(boot: DisklessBoot): string[] {
  return [`systemd.machine_id=${boot.machineId}`];
}

/** The argv every nspawn of lab's starts with: a root, a machine name, and nothing of the host's time zone or journal. */
export function nspawnArgv(root: string, machine: string): string[] {
  return [
    'systemd-nspawn',
    '--quiet',
    `--directory=${root}`,
    `--machine=${machine}`,
    // Without machined/systemd as PID 1 on the host, nspawn must neither register nor make its own scope.
    '--register=no',
    '--keep-unit',
    '--timezone=off',
    '--link-journal=no',
  ];
}

/**
 * The container's PID 1: the child of nspawn that lives in a PID namespace of its own. (nspawn's
 * first child is a short-lived helper in nspawn's own namespace that forks the real one.)
 */
export function nspawnLeader(process: ProcessRef): number | undefined {
  if (!isAlive(process)) return undefined;
  const own = pidNamespaceOf(process.pid);
  return childrenOf(process.pid).find((child) => {
    const namespace = pidNamespaceOf(child);
    return namespace !== undefined && namespace !== own;
  });
}

function pidNamespaceOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return undefined;
  }
}

const ORDERLY_STOP_MS = 30_000;
const KILL_WAIT_MS = 10_000;
/** Just after a start, PID 1 may not exist yet: how long it is given to appear before nspawn itself is killed. */
const LEADER_WAIT_MS = 2000;

export interface StopDeadlines {
  /** For the orderly shutdown before killing. */
  orderlyMs: number;
  /** For the process to go once killed; beyond it the kernel holds it (D state) and lab says so. */
  killMs: number;
}

/** How stopping touches processes; tests swap it for processes that never die. */
export interface ProcessControl {
  isAlive(process: ProcessRef): boolean;
  kill(pid: number, signal: NodeJS.Signals): void;
  leader(process: ProcessRef): number | undefined;
}

const realControl: ProcessControl = {
  isAlive,
  kill: signalProcess,
  leader: nspawnLeader,
};

/** Polled FAST: a restore waits for its machines to be gone before it swaps their roots. */
function gone(process: ProcessRef, withinMs: number, control: ProcessControl): Promise<boolean> {
  return holdsWithin(() => !control.isAlive(process), { within: withinMs, every: FAST });
}

/**
 * Stops an nspawn process by pid (also one the state lost track of, found by its root's path):
 * an orderly shutdown first unless `hard`, then SIGKILL to the container's PID 1, which ends its
 * whole PID namespace (killing nspawn alone would orphan the machine). Every wait is bounded:
 * a process that outlives SIGKILL is reported, never waited for forever.
 */
export async function stopNspawn(
  process: ProcessRef,
  options: { hard: boolean },
  deadlines: StopDeadlines = { orderlyMs: ORDERLY_STOP_MS, killMs: KILL_WAIT_MS },
  control: ProcessControl = realControl,
): Promise<void> {
  if (!control.isAlive(process)) return;
  if (!options.hard) {
    control.kill(process.pid, 'SIGTERM'); // nspawn turns it into an orderly shutdown
    if (await gone(process, deadlines.orderlyMs, control)) return;
  }
  await holdsWithin(() => control.leader(process) !== undefined || !control.isAlive(process), { within: LEADER_WAIT_MS, every: FAST });
  control.kill(control.leader(process) ?? process.pid, 'SIGKILL');
  if (await gone(process, deadlines.killMs, control)) return;
  control.kill(process.pid, 'SIGKILL');
  if (await gone(process, deadlines.killMs, control)) return;
  throw new HostError(
    `process ${process.pid} (systemd-nspawn) did not end within ${(2 * deadlines.killMs) / 1000} s of SIGKILL (state ${processState(process.pid)})`,
    'a process in state D waits for the kernel (a hung mount or device); see /proc/' + process.pid + '/stack',
  );
}

function processState(pid: number): string {
  return statFields(pid)?.[0] ?? 'gone';
}
