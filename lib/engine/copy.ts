import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, rmSync, type Stats, statSync, symlinkSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { AssertionFailure, InfraError, UsageError } from '../errors.js';
import { resolveInRoot } from '../root-path.js';
import { isAlive } from '../state/process.js';
import { readState } from '../state/state.js';
import type { BareLab } from './lab-types.js';
import { assertMachine } from './machines.js';

/** What a copy made at its destination. Special files (devices, sockets, fifos) are never copied: they are counted as skipped. */
export interface CopyReport {
  /** Where the copy landed: a host path, or `machine:/path`. */
  to: string;
  files: number;
  directories: number;
  links: number;
  skipped: number;
}

/** Names what the user wrote when a copy is refused: `web:/root/x` on the command line, the path in a scenario. */
export interface CopyArguments {
  machineArgument: string;
  localArgument: string;
}

/**
 * Where a machine's files are, seen from the host: a running container's root as the machine sees
 * it (through its init's /proc root: its own mounts, /run included), or a stopped one's root.
 */
async function machineFiles(lab: BareLab, machine: string, argument: string): Promise<string> {
  assertMachine(lab, machine);
  const backend = lab.backendOf(machine);
  if (!backend.leaderPid) throw new UsageError(`${argument}: ${machine} is ${backend.what}: lab has no way into its files`);
  const process = readState(lab.dirs.stateFile).machines[machine]?.process;
  const leader = isAlive(process) ? await backend.leaderPid(lab, { name: machine, process }) : undefined;
  if (leader) return `/proc/${leader}/root`;
  const root = lab.dirs.machineRoot(machine);
  if (!existsSync(root)) throw new InfraError(`machine ${machine} has no root yet (build it with: lab up)`);
  return root;
}

/** Resolves a path of the machine in its root; a `..` or a link that climbs out of it is refused, naming the argument (exit 2). */
function inMachine(root: string, file: string, argument: string, followLast: boolean): string {
  if (!file.startsWith('/')) throw new UsageError(`${argument}: the path in the machine must be absolute`);
  return resolveInRoot(root, file, { followLast, climbing: 'refuse', fail: (why) => new UsageError(`${argument}: ${why}`) });
}

function lstatOrUndefined(file: string): Stats | undefined {
  try {
    return lstatSync(file);
  } catch {
    return undefined;
  }
}

const isDirectory = (file: string) => existsSync(file) && statSync(file).isDirectory();

/** `machine:/path` to a host path: into it when it is a directory (as `cp`), else that very file, in a directory that exists. */
export async function copyFromMachine(lab: BareLab, machine: string, machinePath: string, localPath: string, args?: CopyArguments): Promise<CopyReport> {
  const { machineArgument, localArgument } = args ?? { machineArgument: `${machine}:${machinePath}`, localArgument: localPath };
  const root = await machineFiles(lab, machine, machineArgument);
  const source = inMachine(root, machinePath, machineArgument, true);
  if (!lstatOrUndefined(source)) throw new AssertionFailure(`${machine}: ${machinePath} does not exist`);
  let target = path.resolve(localPath);
  if (isDirectory(target)) target = path.join(target, path.posix.basename(machinePath));
  else if (localPath.endsWith('/')) throw new UsageError(`${localArgument}: no such directory`);
  else if (!isDirectory(path.dirname(target))) throw new UsageError(`${localArgument}: the directory ${path.dirname(target)} does not exist`);
  // Setuid and setgid bits stay in the machine: a root-owned copy on the host would otherwise be one for anyone.
  return { to: target, ...copyTree(source, (relative) => path.join(target, relative), 0o1777) };
}

/** A host file or tree into the machine: into `machinePath` when it is a directory there, else as that path. Every path written is resolved in the machine. */
export async function copyToMachine(lab: BareLab, localPath: string, machine: string, machinePath: string, args?: CopyArguments): Promise<CopyReport> {
  const { machineArgument, localArgument } = args ?? { machineArgument: `${machine}:${machinePath}`, localArgument: localPath };
  const source = path.resolve(localPath);
  if (!existsSync(source)) throw new UsageError(`${localArgument}: no such file or directory`);
  const root = await machineFiles(lab, machine, machineArgument);
  let top = machinePath;
  if (isDirectory(inMachine(root, machinePath, machineArgument, true))) top = path.posix.join(machinePath, path.basename(source));
  else if (machinePath.endsWith('/')) throw new AssertionFailure(`${machine}: no directory ${machinePath}`);
  else if (!isDirectory(inMachine(root, path.posix.dirname(machinePath), machineArgument, true))) throw new AssertionFailure(`${machine}: no directory ${path.posix.dirname(machinePath)}`);
  // A link in the machine is followed for a directory (the copy goes into what it leads to), replaced for a file or a link.
  const destination = (relative: string, kind: EntryKind) => inMachine(root, path.posix.join(top, relative), machineArgument, kind === 'directory');
  return { to: `${machine}:${top}`, ...copyTree(source, destination, 0o7777) };
}

type EntryKind = 'directory' | 'file' | 'link';

/**
 * Copies a file or a tree (links copied as links, never followed) to where `destination` says
 * each entry goes, parents first; modes kept within `modeMask`, files' times too. What is in the
 * way is replaced, but for a directory, which is merged into.
 */
function copyTree(source: string, destination: (relative: string, kind: EntryKind) => string, modeMask: number): Omit<CopyReport, 'to'> {
  const counts = { files: 0, directories: 0, links: 0, skipped: 0 };
  const replace = (target: string) => {
    if (lstatOrUndefined(target)?.isDirectory()) throw new AssertionFailure(`cannot replace the directory ${target} by a file`);
    rmSync(target, { force: true });
  };
  const visit = (from: string, relative: string, stat: Stats) => {
    if (stat.isDirectory()) {
      const to = destination(relative, 'directory');
      const existing = lstatOrUndefined(to);
      if (!existing) {
        mkdirSync(to);
        chmodSync(to, stat.mode & modeMask); // not narrowed by lab's umask
      } else if (!existing.isDirectory()) throw new AssertionFailure(`cannot replace ${to} by a directory`);
      counts.directories++;
      for (const entry of readdirSync(from)) visit(path.join(from, entry), path.join(relative, entry), lstatSync(path.join(from, entry)));
    } else if (stat.isFile()) {
      const to = destination(relative, 'file');
      replace(to);
      copyFileSync(from, to);
      chmodSync(to, stat.mode & modeMask);
      utimesSync(to, stat.atime, stat.mtime);
      counts.files++;
    } else if (stat.isSymbolicLink()) {
      const to = destination(relative, 'link');
      replace(to);
      symlinkSync(readlinkSync(from), to);
      counts.links++;
    } else counts.skipped++;
  };
  // The source itself is followed (a link given by name is copied as what it leads to).
  visit(source, '', statSync(source));
  return counts;
}
