import { lstatSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { BuildFailure } from './errors.js';

const MAX_SYMLINK_HOPS = 40;

export interface RootPathOptions {
  /** Follow a link in the last component too (reading through it); otherwise the link itself is the path (a write replaces it). */
  followLast: boolean;
  /**
   * A `..` that climbs above the machine's `/`, in the path or in a link's target: `clamp` stays at
   * `/` as the machine's kernel does; `refuse` calls `fail` with what climbed (a host path given
   * by a user, where such a link means to reach the host).
   */
  climbing: 'clamp' | 'refuse';
  /** The error for a path that cannot be resolved (a loop, or a refused climb). */
  fail: (why: string) => Error;
}

/**
 * Maps a path as seen inside the machine to the host path under `root`, following symlinks
 * the way the machine would (absolute targets stay inside the root): a file written for a
 * machine can never land on the host.
 */
export function resolveInRoot(root: string, file: string, options: RootPathOptions): string {
  // Not normalized first: `..` after a link climbs from where the link leads, as in the machine.
  // Each part remembers the link whose target it came from, to name what climbed out.
  const split = (text: string, from?: string) => text.split('/').filter((part) => part !== '' && part !== '.').map((part) => ({ part, from }));
  const parts = split(file);
  const resolved: string[] = [];
  let hops = 0;
  while (parts.length > 0) {
    const { part, from } = parts.shift()!;
    if (part === '..') {
      if (resolved.length === 0 && options.climbing === 'refuse') {
        throw options.fail(from ? `the link ${from} leads out of the machine's root` : `'..' climbs out of the machine's root`);
      }
      resolved.pop();
      continue;
    }
    const candidate = path.join(root, ...resolved, part);
    let isLink = false;
    try {
      isLink = (parts.length > 0 || options.followLast) && lstatSync(candidate).isSymbolicLink();
    } catch {
      // Missing components are created later; nothing to follow.
    }
    if (!isLink) {
      resolved.push(part);
      continue;
    }
    if (++hops > MAX_SYMLINK_HOPS) throw options.fail(`too many symlinks resolving ${file} in ${root}`);
    const target = readlinkSync(candidate);
    const link = `/${[...resolved, part].join('/')} -> ${target}`;
    if (target.startsWith('/')) resolved.length = 0;
    parts.unshift(...split(target, link));
  }
  return path.join(root, ...resolved);
}

/** Where a stage writes `file` in a root: links followed as in the machine, but not the last one (a write replaces it). */
export function pathInRoot(root: string, file: string): string {
  return resolveInRoot(root, file, { followLast: false, climbing: 'clamp', fail: (why) => new BuildFailure(why) });
}
