import { lstatSync, mkdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isWithin } from '../config/binds.js';
import { machineField, tmpfsOf } from '../config/diskless.js';
import type { MachineConfig } from '../config/schema.js';
import { UsageError } from '../errors.js';
import type { Bind, DisklessBoot } from '../runtime/nspawn-process.js';
import { pathInRoot } from '../root-path.js';
import { identityFiles, NETWORKD_DIR } from '../stages/system.js';
import type { Lab } from './lab-types.js';

/**
 * A diskless machine's boot: the directory it shares, checked in its root machine's root, and its
 * own identity, written in the lab's state and bound read-only over the shared root's. Nothing is
 * ever written into the shared root.
 */

/** The machine-id is no file of the identity: systemd takes it from its command line (see disklessInit). */
const MACHINE_ID = '/etc/machine-id';

/**
 * A diskless machine keeps its journal in memory (its /var/log is a tmpfs, or its writes an
 * overlay's): journald's first file there takes 8 MiB of the host's memory, half of what a
 * contestant costs. Limited so, it takes 1 MiB, and keeps at most 2. Bound into the machine's own
 * /run (nspawn's tmpfs), where journald reads drop-ins too: nothing of the shared root is hidden.
 */
const JOURNALD_DROP_IN = { path: '/run/systemd/journald.conf.d/lab-diskless.conf', content: '[Journal]\nRuntimeMaxFileSize=1M\nRuntimeMaxUse=2M\n' };

/**
 * The identity's targets: what the system stage writes but the machine-id, each file in /etc bound
 * over its own, and the networkd directory bound whole, so that the root machine's own networkd
 * files (its static addresses, by the same interface names) are hidden.
 */
function identityTargets(files: readonly { path: string }[]): string[] {
  return [...new Set(files.filter((f) => f.path !== MACHINE_ID).map((f) => (path.dirname(f.path) === NETWORKD_DIR ? NETWORKD_DIR : f.path)))];
}

/**
 * The directory `machine` boots from in `rootDir` (its root machine's root, or a snapshot of it):
 * its path there, a directory that does not leave the root through a symlink, with the mount points
 * a read-only boot needs (each tmpfs path, each identity target). A usage error names the field.
 * The path keeps the root's own prefix, so that the machine's nspawn is found by it.
 */
export function disklessDirectory(lab: Lab, machine: MachineConfig, rootDir: string): string {
  const root = machine.root!;
  const field = machineField(lab.config, machine.name);
  const where = `${root.machine}'s root`;
  let real: string;
  let realRoot: string;
  try {
    realRoot = realpathSync(rootDir);
    real = realpathSync(path.join(rootDir, root.path));
  } catch {
    throw new UsageError(`${field}.root.path: ${root.path} is not in ${where} (its stages make it)`);
  }
  if (!isWithin(real, realRoot)) throw new UsageError(`${field}.root.path: ${root.path} leaves ${where} through a symlink (to ${real} on the host)`);
  if (!statSync(real).isDirectory()) throw new UsageError(`${field}.root.path: ${root.path} in ${where} is not a directory`);
  const directory = path.join(rootDir, path.relative(realRoot, real));
  const tmpfs = tmpfsOf(machine);
  // Read-only, systemd mounts the machine's id over /etc/machine-id; under an overlay it writes it there.
  const files = [...identityTargets(identityOf(lab, machine.name)), ...(tmpfs ? [MACHINE_ID] : [])];
  const needed: [string, string][] = [...(tmpfs ?? []).map((dir, j): [string, string] => [dir, `${field}.tmpfs.${j}`]), ...files.map((t): [string, string] => [t, `${field}.root.path`])];
  for (const [target, at] of needed) {
    const found = lstatOrUndefined(pathInRoot(directory, target));
    const isDir = Boolean(tmpfs?.includes(target)) || target === NETWORKD_DIR;
    if (!found || (isDir && !found.isDirectory() && !found.isSymbolicLink())) {
      throw new UsageError(`${at}: ${root.machine}'s ${root.path} has no ${isDir ? 'directory' : 'file'} ${target}: a read-only root needs its mount points (make it in the stage that builds ${root.path})`);
    }
  }
  return directory;
}

function lstatOrUndefined(file: string) {
  try {
    return lstatSync(file);
  } catch {
    return undefined;
  }
}

function identityOf(lab: Lab, name: string): { path: string; content: string }[] {
  return identityFiles(lab.loaded.machines.find((m) => m.name === name)!.view);
}

/**
 * Writes the machine's identity into its directory of the lab's state (afresh: the topology may
 * have changed) and says how it boots: the directory checked, its identity bound read-only.
 */
export function disklessBoot(lab: Lab, name: string): { directory: string; boot: DisklessBoot } {
  const machine = lab.config.machines.find((m) => m.name === name)!;
  const directory = disklessDirectory(lab, machine, lab.dirs.machineRoot(machine.root!.machine));
  const files = identityOf(lab, name);
  const dir = lab.dirs.identityDir(name);
  rmSync(dir, { recursive: true, force: true });
  const written = [...files.filter((f) => f.path !== MACHINE_ID), JOURNALD_DROP_IN];
  for (const parent of new Set(written.map((f) => path.dirname(f.path)))) mkdirSync(path.join(dir, parent), { recursive: true });
  for (const file of written) writeFileSync(path.join(dir, file.path), file.content);
  const identity: Bind[] = [...identityTargets(files), JOURNALD_DROP_IN.path].map((target) => ({ source: path.join(dir, target), target, readonly: true }));
  const machineId = files.find((f) => f.path === MACHINE_ID)!.content.trim();
  return { directory, boot: { machineId, identity, tmpfs: tmpfsOf(machine) } };
}
