import { realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { LAB_RUN_DIR } from '../paths.js';

/**
 * What a bind may be: its target a place of the machine's own tree, its source a directory of the
 * lab's repository (or, said explicitly, elsewhere), never the host's system or another lab's pool.
 * Checked before anything is made; the source again just before it is mounted.
 */

/** Where the machine's kernel and systemd mount their own file systems: nothing is bound there. */
const MACHINE_OWN_TARGETS = ['/proc', '/sys', '/dev', '/run'];

/** What is wrong with a path that must be absolute and plain (no '..', '.', doubled or trailing slash), or undefined. */
export function plainPathProblem(file: string, where: string, what: string): string | undefined {
  if (!file.startsWith('/')) return `an absolute path ${where}`;
  if (file.split('/').includes('..')) return `'..' is not allowed in ${what} (${file})`;
  const normal = path.posix.normalize(file).replace(/(.)\/+$/, '$1');
  if (normal !== file) return `write it as ${normal}`;
  return undefined;
}

/** What is wrong with a bind target (inside the machine), or undefined. */
export function bindTargetProblem(target: string): string | undefined {
  const plain = plainPathProblem(target, 'inside the machine', 'a target');
  if (plain) return plain;
  if (target === '/') return "the machine's root cannot be bound over";
  const own = MACHINE_OWN_TARGETS.find((dir) => isWithin(target, dir));
  if (own) return `${target} is under ${own}, which the machine's kernel and systemd mount themselves`;
  return undefined;
}

/** The host's own directories (each one's parents are in the list too): never a bind source. */
const SYSTEM_DIRS = ['/', '/bin', '/boot', '/dev', '/etc', '/home', '/media', '/mnt', '/opt', '/proc', '/root', '/run', '/sbin', '/srv', '/sys', '/tmp', '/usr', '/usr/bin', '/usr/sbin', '/usr/local', '/var', '/var/cache', '/var/lib', '/var/log', '/var/tmp'];
/** Also /lib, /lib64, /usr/lib32, ... */
const LIBRARY_DIR = /^(\/usr)?\/lib[^/]*$/;
/** Pseudo-file systems: nothing under them is a directory to share. */
const KERNEL_DIRS = ['/proc', '/sys', '/dev'];

export interface BindSourceContext {
  /** The config file's directory (its real path): sources stay in its tree unless they say `allowOutside`. */
  base: string;
  /** The lab's state root and shared cache (real paths where they exist): other labs' pools, keys, the install lock. */
  labDirs: readonly string[];
}

/** What is wrong with a bind source, given as `written` (absolute) and resolving to `resolved`, or undefined. */
export function bindSourceProblem(written: string, resolved: string, context: BindSourceContext, allowOutside: boolean): string | undefined {
  const via = written === resolved ? '' : ` (it resolves to ${resolved})`;
  for (const candidate of new Set([written, resolved])) {
    if (SYSTEM_DIRS.includes(candidate) || LIBRARY_DIR.test(candidate)) return `${written}${via} is a system directory: never bound`;
    const kernel = KERNEL_DIRS.find((dir) => isWithin(candidate, dir));
    if (kernel) return `${written}${via} is in ${kernel}, the kernel's: never bound`;
  }
  const lab = [LAB_RUN_DIR, ...context.labDirs].find((dir) => isWithin(resolved, dir) || isWithin(dir, resolved));
  if (lab) return `${written}${via} ${isWithin(resolved, lab) ? 'is in' : 'holds'} ${lab}, lab's own (every lab's pool and keys): never bound`;
  if (!allowOutside && !isWithin(resolved, context.base)) {
    return `${written}${via} is outside the config's directory ${context.base}: say allowOutside: true to bind it anyway (the machine then reads, or writes, a host directory lab does not own)`;
  }
  return undefined;
}

/**
 * The real path of a bind source, checked (exit 2 naming `field`): it exists, is a directory and
 * passes `bindSourceProblem`. Symlinks are resolved here, once: what is mounted is this path.
 */
export function resolveBindSource(source: string, allowOutside: boolean, context: BindSourceContext, field: string): string {
  let resolved: string;
  try {
    resolved = realpathSync(source);
  } catch {
    throw new UsageError(`${field}: ${source} does not exist`);
  }
  if (!statSync(resolved).isDirectory()) throw new UsageError(`${field}: ${source}${source === resolved ? '' : ` (${resolved})`} is not a directory`);
  const problem = bindSourceProblem(source, resolved, context, allowOutside);
  if (problem) throw new UsageError(`${field}: ${problem}`);
  return resolved;
}

/**
 * Just before a bind is mounted: its source must still be the directory that was checked (a
 * symlink swapped in since, by whatever writes there, would take the mount elsewhere).
 */
export function assertBindSourceUnchanged(source: string, field: string): void {
  let now: string | undefined;
  try {
    now = realpathSync(source);
  } catch {
    now = undefined;
  }
  if (now !== source || !statSync(source).isDirectory()) {
    throw new UsageError(`${field}: ${source} ${now ? `now resolves to ${now}` : 'is gone'} since lab checked it: refused`, 'something changed the bind source under lab; look at what writes there, then run the command again');
  }
}

/** The real path of a directory of lab's, or the path itself while it does not exist yet. */
export function realOrSelf(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return path.resolve(dir);
  }
}

/** `inner` is `outer` or under it. */
export function isWithin(inner: string, outer: string): boolean {
  const relative = path.relative(outer, inner);
  return relative === '' || (relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative));
}
