import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { BareLab } from './lab-types.js';

/** Something an interrupted command left in the pool, and how to finish or undo it. */
export interface Interrupted {
  what: string;
  repair(): Promise<void>;
}

const exists = (file: string) => existsSync(file);
const rmLater = (found: Interrupted[], file: string, why: string) => found.push({ what: `${file}: ${why}`, repair: async () => rmSync(file, { force: true }) });

/**
 * What interrupted restores and builds left in the pool (by names, and whether a checkpoint's metadata reads):
 * - `<root>.incoming.partial`, `<root>.partial`, `<snapshot>.partial`: copies never finished;
 * - `<root>.incoming` beside a root: a restore that never swapped;
 * - `<root>.incoming` and `<root>.outgoing` without a root: a restore stopped between its two
 *   renames, rolled back (the state still names the old root);
 * - `<root>.outgoing` beside a root: a restore that swapped but did not delete the old root;
 * - the staging directory of a cache pull (`cache-pull.partial`): what it was receiving.
 */
export function interruptedWork(lab: BareLab): Interrupted[] {
  const found: Interrupted[] = [];
  const remove = (file: string, why: string) => found.push({ what: `${file}: ${why}`, repair: () => lab.storage.remove(file) });
  const machinesDir = lab.dirs.machinesDir;
  if (exists(machinesDir)) {
    const entries = new Set(readdirSync(machinesDir));
    for (const entry of entries) {
      const file = path.join(machinesDir, entry);
      if (entry.endsWith('.partial')) remove(file, 'a copy that was never finished');
      const root = entry.replace(/\.(incoming|outgoing)$/, '');
      if (root === entry) continue;
      const rootFile = path.join(machinesDir, root);
      if (entry.endsWith('.incoming')) {
        if (entries.has(root)) remove(file, 'a restore that never swapped roots');
        else if (entries.has(`${root}.outgoing`)) {
          found.push({
            what: `${file}: a restore stopped between its renames (the old root is put back)`,
            repair: async () => {
              renameSync(path.join(machinesDir, `${root}.outgoing`), rootFile);
              await lab.storage.remove(file);
            },
          });
        } else remove(file, 'a restore of a machine that had no root');
      } else if (entries.has(root)) remove(file, "the old root of a restore that did not delete it");
    }
  }
  const snapshots = path.join(lab.storage.root, 'snapshots');
  if (exists(snapshots)) {
    for (const machine of readdirSync(snapshots)) {
      const dir = path.join(snapshots, machine);
      for (const entry of readdirSync(dir).filter((e) => e.endsWith('.partial'))) remove(path.join(dir, entry), 'a snapshot that was never finished');
    }
  }
  // A checkpoint's metadata is written last (whole, by a rename) and deleted first: a directory
  // without it is no checkpoint, nor is metadata that does not read (written by an older lab).
  const checkpoints = lab.dirs.checkpointsDir;
  if (exists(checkpoints)) {
    const entries = readdirSync(checkpoints);
    const readable = (meta: string) => {
      try {
        JSON.parse(readFileSync(path.join(checkpoints, meta), 'utf8'));
        return true;
      } catch {
        return false;
      }
    };
    for (const entry of entries.filter((e) => e.endsWith('.json.partial') || (e.endsWith('.json') && !readable(e)))) {
      rmLater(found, path.join(checkpoints, entry), 'the metadata of a checkpoint never finished');
    }
    for (const entry of entries.filter((e) => !e.includes('.json') && !readable(`${e}.json`))) {
      const dir = path.join(checkpoints, entry);
      found.push({
        what: `${dir}: a checkpoint never finished, or half deleted`,
        repair: async () => {
          for (const machine of readdirSync(dir)) await lab.storage.remove(path.join(dir, machine));
          rmSync(dir, { recursive: true, force: true });
        },
      });
    }
  }
  if (exists(lab.dirs.cacheStaging)) remove(lab.dirs.cacheStaging, 'what a cache pull was receiving');
  const images = path.join(lab.storage.root, 'images');
  if (exists(images)) for (const entry of readdirSync(images).filter((e) => e.endsWith('.partial'))) remove(path.join(images, entry), 'a base image that was never finished');
  return found;
}

/** Finishes or undoes what interrupted commands left (the caller holds the lab's lock). */
export async function repairInterrupted(lab: BareLab): Promise<string[]> {
  const found = interruptedWork(lab);
  for (const item of found) await item.repair();
  return found.map((item) => item.what);
}
