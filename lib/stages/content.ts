import { createHash } from 'node:crypto';
import { type Dirent, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';

export const sha = (content: string | Buffer) => createHash('sha256').update(content).digest('hex');

/** Every entry of a directory tree, in name order, with its path relative to the tree's root (.git left out: it is history, not content). */
export function* treeEntries(root: string, dir = root): Generator<{ relative: string; full: string; entry: Dirent }> {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (entry.name === '.git') continue;
    const full = path.join(dir, entry.name);
    yield { relative: path.relative(root, full), full, entry };
    if (entry.isDirectory()) yield* treeEntries(root, full);
  }
}

/** The content of a directory tree: every file's path and content, every link's target. */
export function treeHash(root: string): string {
  const hash = createHash('sha256');
  if (!statSync(root).isDirectory()) return hash.update(sha(readFileSync(root))).digest('hex');
  for (const { relative, full, entry } of treeEntries(root)) {
    if (entry.isSymbolicLink()) hash.update(`l ${relative} ${readlinkSync(full)}\0`);
    else if (entry.isFile()) hash.update(`f ${relative} ${sha(readFileSync(full))}\0`);
  }
  return hash.digest('hex');
}
