import { existsSync, mkdirSync, renameSync, statfsSync, statSync } from 'node:fs';
import path from 'node:path';
import { run } from '../exec.js';
import type { Storage } from './storage.js';

const BTRFS_SUPER_MAGIC = 0x9123683e;

/** True when `dir` (or its nearest existing parent) is on btrfs; asked in-process, every command does. */
export function isOnBtrfs(dir: string): boolean {
  let probe = dir;
  while (!existsSync(probe)) probe = path.dirname(probe);
  return statfsSync(probe).type === BTRFS_SUPER_MAGIC;
}

async function isMountPoint(dir: string): Promise<boolean> {
  if (!existsSync(dir)) return false;
  const result = await run(['mountpoint', '-q', dir], { allowFailure: true });
  return result.exitCode === 0;
}

/**
 * Subvolumes and snapshots on btrfs. When the state directory is not on btrfs, the pool is a
 * sparse image formatted btrfs and loop-mounted (like machined's old /var/lib/machines.raw);
 * the loop device is attached by mount and detached by umount (autoclear).
 */
export class BtrfsStorage implements Storage {
  readonly kind = 'btrfs' as const;

  constructor(
    readonly root: string,
    /** The sparse image backing the pool, or undefined when `root` itself is on btrfs. */
    private readonly image: { file: string; size: string } | undefined,
  ) {}

  async open(): Promise<void> {
    if (!this.image) {
      mkdirSync(this.root, { recursive: true });
      return;
    }
    if (await isMountPoint(this.root)) return;
    mkdirSync(this.root, { recursive: true });
    if (!existsSync(this.image.file)) {
      await run(['truncate', '-s', this.image.size, this.image.file]);
      await run(['mkfs.btrfs', '-q', '-L', path.basename(path.dirname(this.image.file)), this.image.file], { timeout: 60_000 });
    }
    await run(['mount', '-o', 'loop,noatime', this.image.file, this.root], { timeout: 60_000 });
  }

  async create(target: string): Promise<void> {
    mkdirSync(path.dirname(target), { recursive: true });
    await run(['btrfs', 'subvolume', 'create', target]);
  }

  async snapshot(source: string, target: string, options: { readonly: boolean }): Promise<void> {
    mkdirSync(path.dirname(target), { recursive: true });
    const partial = `${target}.partial`;
    await this.remove(partial);
    await run(['btrfs', 'subvolume', 'snapshot', ...(options.readonly ? ['-r'] : []), source, partial]);
    renameSync(partial, target);
  }

  async seal(source: string, target: string): Promise<void> {
    await run(['btrfs', 'property', 'set', '-ts', source, 'ro', 'true']);
    renameSync(source, target);
  }

  async remove(target: string): Promise<void> {
    if (!existsSync(target)) return;
    if (!isSubvolume(target)) {
      await run(['rm', '-rf', '--one-file-system', '--', target], { timeout: 10 * 60_000 });
      return;
    }
    // Most roots hold no nested subvolume: one command. Otherwise the delete fails and the nested ones go first.
    if ((await run(['btrfs', 'subvolume', 'delete', target], { allowFailure: true })).exitCode === 0) return;
    const nested = await this.nestedSubvolumes(target);
    if (nested.length === 0) await run(['btrfs', 'subvolume', 'delete', target]); // not a nesting problem: report it
    // What is nested in a read-only subvolume can only go once it is writable.
    await run(['btrfs', 'property', 'set', '-ts', target, 'ro', 'false']);
    for (const inner of nested) await this.remove(inner);
    await run(['btrfs', 'subvolume', 'delete', target]);
  }

  /** Subvolumes directly inside `target` (systemd makes var/lib/machines, var/lib/portables). */
  private async nestedSubvolumes(target: string): Promise<string[]> {
    const self = (await run(['btrfs', 'subvolume', 'show', target])).stdout.split('\n')[0].trim();
    const { stdout } = await run(['btrfs', 'subvolume', 'list', '-o', target]);
    return stdout
      .split('\n')
      .map((line) => /\bpath (.+)$/.exec(line)?.[1])
      .filter((p): p is string => Boolean(p))
      .map((p) => path.join(target, self === '/' ? p : path.relative(self, p.replace(/^<FS_TREE>\//, ''))));
  }

  async exclusiveBytes(target: string): Promise<number | undefined> {
    const result = await run(['btrfs', 'filesystem', 'du', '-s', '--raw', target], { allowFailure: true, timeout: 60_000 });
    const numbers = result.stdout.split('\n')[1]?.trim().split(/\s+/);
    return numbers ? Number(numbers[1]) : undefined;
  }

  async close(): Promise<void> {
    if (this.image && (await isMountPoint(this.root))) await run(['umount', this.root], { timeout: 60_000 });
  }

  describe(): string {
    return this.image
      ? `btrfs (loopback pool ${this.image.file}, ${this.image.size} sparse, mounted at ${this.root})`
      : `btrfs (${this.root} is on btrfs)`;
  }
}

/** A btrfs subvolume's root directory always has inode number 256. */
function isSubvolume(target: string): boolean {
  return statSync(target).ino === 256;
}
