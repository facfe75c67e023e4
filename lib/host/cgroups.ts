import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { TimeoutError } from '../errors.js';
import { FAST, poll } from '../wait.js';

/**
 * Mount points of the cgroup hierarchies a machine's systemd manages: the unified (v2) one, and on
 * a hybrid host the v1 `name=systemd` one.
 */
export function systemdHierarchies(mounts?: string): string[] {
  if (mounts === undefined) return (hostHierarchies ??= systemdHierarchies(readFileSync('/proc/self/mounts', 'utf8')));
  return mounts
    .split('\n')
    .map((line) => line.split(' '))
    .filter(([, , type, options]) => type === 'cgroup2' || (type === 'cgroup' && (options ?? '').split(',').includes('name=systemd')))
    .map(([, mountPoint]) => mountPoint!);
}

/** The host's, read once: its mount table grows with every machine's mounts, and the hierarchies do not move. */
let hostHierarchies: string[] | undefined;

/**
 * A cgroup of the lab's own in every hierarchy, one per machine (or build step). Without it, every
 * nspawn started outside systemd sits in the same cgroup, and the machines' systemds share one
 * `payload` tree: one deletes the cgroups another is starting a service in (status=219/CGROUP).
 */
export function labCgroups(lab: string, leaf: string, hierarchies = systemdHierarchies()): string[] {
  return hierarchies.map((mount) => path.join(mount, `lab.${lab}`, leaf));
}

export function labCgroupRoots(lab: string, hierarchies = systemdHierarchies()): string[] {
  return hierarchies.map((mount) => path.join(mount, `lab.${lab}`)).filter(existsSync);
}

/**
 * argv that moves itself into `cgroups`, then runs `argv` (exec: same pid). A constant script; the
 * directories and the command come as arguments.
 */
export function inCgroups(cgroups: readonly string[], argv: readonly string[]): string[] {
  for (const dir of cgroups) mkdirSync(dir, { recursive: true });
  const script = 'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 125; shift; done; shift; exec "$@"';
  return ['/bin/sh', '-c', script, 'lab-cgroup', ...cgroups, '--', ...argv];
}

/** Removes a cgroup tree, deepest first; a cgroup that still has processes stays (and is reported by leftovers). */
export function removeCgroupTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) removeCgroupTree(path.join(dir, entry.name));
  try {
    rmdirSync(dir);
  } catch {
    // busy: a process still runs in it
  }
}

/** Every process in the cgroup trees (the lab's machines, and what outlived its nspawn). */
export function processesIn(roots: readonly string[]): number[] {
  const pids = new Set<number>();
  const walk = (dir: string) => {
    try {
      for (const pid of readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) pids.add(Number(pid));
      for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) walk(path.join(dir, entry.name));
    } catch {
      // removed meanwhile
    }
  };
  for (const root of roots) walk(root);
  return [...pids].filter((pid) => pid !== process.pid);
}

/**
 * The cgroup (v2) holding a container's whole tree, from its init's pid: its init sits in
 * `init.scope` below it once booted. Undefined on a host without the unified hierarchy.
 */
export function containerCgroup(leaderPid: number, hierarchies = systemdHierarchies(), cgroupFile = `/proc/${leaderPid}/cgroup`): string | undefined {
  const unified = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' '))
    .find(([, mountPoint, type]) => type === 'cgroup2' && hierarchies.includes(mountPoint!))?.[1];
  let own: string | undefined;
  try {
    own = readFileSync(cgroupFile, 'utf8').split('\n').find((line) => line.startsWith('0::'))?.slice(3);
  } catch {
    return undefined; // the machine is gone
  }
  if (!unified || !own) return undefined;
  const dir = path.join(unified, own.endsWith('/init.scope') ? path.dirname(own) : own);
  return existsSync(path.join(dir, 'cgroup.freeze')) ? dir : undefined;
}

/**
 * Freezes (or thaws) cgroups through cgroup v2's freezer and waits until the kernel says they are,
 * within `timeoutMs`: a frozen machine runs nothing, so its root does not change under a snapshot.
 */
export async function setFrozen(dirs: readonly string[], frozen: boolean, timeoutMs = 5000): Promise<void> {
  const want = frozen ? '1' : '0';
  for (const dir of dirs) writeFileSync(path.join(dir, 'cgroup.freeze'), want);
  const done = (dir: string) => {
    try {
      return new RegExp(`^frozen ${want}$`, 'm').test(readFileSync(path.join(dir, 'cgroup.events'), 'utf8'));
    } catch {
      return true; // removed: nothing left to freeze
    }
  };
  await poll(`cgroups to be ${frozen ? 'frozen' : 'thawed'}`, () => dirs.every(done), {
    within: timeoutMs,
    every: FAST,
    onTimeout: () => new TimeoutError(`cgroups not ${frozen ? 'frozen' : 'thawed'} within ${timeoutMs} ms: ${dirs.filter((d) => !done(d)).join(', ')}`),
  });
}
