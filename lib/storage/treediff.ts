import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, type Stats } from 'node:fs';
import path from 'node:path';

/**
 * What differs between two root filesystems, as paths relative to them: added, removed, or changed
 * in type, mode, owner, link target or content. Modification times alone are no change (a stage
 * that rewrites a file with the same bytes changed nothing). Paths under `ignored` are skipped.
 */
export function diffTrees(before: string, after: string, ignored: readonly string[]): string[] {
  const changes: string[] = [];
  const skip = (relative: string) => ignored.some((prefix) => relative === prefix || relative.startsWith(`${prefix}/`) || matchesGlob(relative, prefix));
  const walk = (relative: string) => {
    const a = entries(path.join(before, relative));
    const b = entries(path.join(after, relative));
    for (const name of new Set([...a, ...b])) {
      const child = relative === '' ? `/${name}` : `${relative}/${name}`;
      if (skip(child)) continue;
      if (!a.has(name)) {
        changes.push(`added ${child}`);
        continue;
      }
      if (!b.has(name)) {
        changes.push(`removed ${child}`);
        continue;
      }
      const sa = lstatSync(path.join(before, child));
      const sb = lstatSync(path.join(after, child));
      const what = difference(sa, sb, path.join(before, child), path.join(after, child));
      if (what) changes.push(`${what} ${child}`);
      else if (sa.isDirectory()) walk(child);
    }
  };
  walk('');
  return changes;
}

/** `*` in an ignored path stands for any name: `/usr/lib/python3/*\/__pycache__`. */
function matchesGlob(relative: string, pattern: string): boolean {
  if (!pattern.includes('*')) return false;
  const regex = new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*')}(/|$)`);
  return regex.test(relative);
}

function entries(dir: string): Set<string> {
  try {
    return new Set(readdirSync(dir));
  } catch {
    return new Set();
  }
}

function kind(stats: Stats): string {
  return stats.isFile() ? 'file' : stats.isDirectory() ? 'directory' : stats.isSymbolicLink() ? 'link' : 'special';
}

function difference(a: Stats, b: Stats, fileA: string, fileB: string): string | undefined {
  if (kind(a) !== kind(b)) return 'type of';
  if (a.mode !== b.mode) return 'mode of';
  if (a.uid !== b.uid || a.gid !== b.gid) return 'owner of';
  if (a.isSymbolicLink()) return readlinkSync(fileA) === readlinkSync(fileB) ? undefined : 'target of';
  if (!a.isFile()) return undefined;
  if (a.size !== b.size) return 'content of';
  // Same size: the same bytes unless proven otherwise; equal times and inode (a snapshot's) mean untouched.
  if (a.mtimeMs === b.mtimeMs && a.ino === b.ino) return undefined;
  return sameContent(fileA, fileB, a.size) ? undefined : 'content of';
}

function sameContent(fileA: string, fileB: string, size: number): boolean {
  const chunk = 1 << 20;
  const bufferA = Buffer.alloc(Math.min(chunk, size));
  const bufferB = Buffer.alloc(Math.min(chunk, size));
  const fa = openSync(fileA, 'r');
  const fb = openSync(fileB, 'r');
  try {
    for (let offset = 0; offset < size; ) {
      const readA = readSync(fa, bufferA, 0, bufferA.length, offset);
      const readB = readSync(fb, bufferB, 0, bufferB.length, offset);
      if (readA !== readB || !bufferA.subarray(0, readA).equals(bufferB.subarray(0, readB))) return false;
      if (readA === 0) break;
      offset += readA;
    }
    return true;
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
}
