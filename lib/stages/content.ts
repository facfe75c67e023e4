import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';

export const sha = (content: string | Buffer) => createHash('sha256').update(content).digest('hex');

/** The content of a directory tree: every file's path and content, every link's target (.git left out: it is history, not content). */
export function treeHash(root: string): string {
  const hash = createHash('sha256');
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (entry.name === '.git') continue;
      const full = path.join(dir, entry.name);
      const relative = path.relative(root, full);
      if (entry.isSymbolicLink()) hash.update(`l ${relative} ${readlinkSync(full)}\0`);
      else if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) hash.update(`f ${relative} ${sha(readFileSync(full))}\0`);
    }
  };
  if (statSync(root).isDirectory()) walk(root);
  else hash.update(sha(readFileSync(root)));
  return hash.digest('hex');
}
