import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statfsSync, statSync } from 'node:fs';
import path from 'node:path';
import { run } from '../exec.js';
import { holdsWithin, NORMAL } from '../wait.js';
import type { Tool } from '../host/prereq.js';
import { poolSpace, type Storage } from './storage.js';

const BTRFS_SUPER_MAGIC = 0x9123683e;
/** A send or receive of a whole root: a base image is a few hundred MiB. */
const STREAM_TIMEOUT_MS = 30 * 60_000;

/** True when `dir` (or its nearest existing parent) is on btrfs; asked in-process, every command does. */
export function isOnBtrfs(dir: string): boolean {
  let probe = dir;
  while (!existsSync(probe)) probe = path.dirname(probe);
  return statfsSync(probe).type === BTRFS_SUPER_MAGIC;
}

/** Mount points at or below `dir`, deepest first (the order to unmount them in). */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => (line.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((mount) => mount === dir || mount.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Loop devices backed by `file`, read from sysfs. */
export function loopDevicesOf(file: string): string[] {
  if (!existsSync('/sys/block')) return [];
  return readdirSync('/sys/block')
    .filter((dev) => dev.startsWith('loop'))
    .filter((dev) => {
      try {
        return readFileSync(`/sys/block/${dev}/loop/backing_file`, 'utf8').trim().replace(/ \(deleted\)$/, '') === file;
      } catch {
        return false;
      }
    })
    .map((dev) => `/dev/${dev}`);
}

const isMountPoint = (dir: string) => mountsUnder(dir).includes(dir);

/**
 * Subvolumes and snapshots on btrfs. When the state directory is not on btrfs, the pool is a
 * sparse image formatted btrfs and loop-mounted (like machined's old /var/lib/machines.raw);
 * the loop device is attached by mount and detached by umount (autoclear).
 */
/** How long destroy waits for the pool's loop device to be released once the pool is unmounted. */
const LOOP_RELEASE_MS = 20_000;

export class BtrfsStorage implements Storage {
  readonly kind = 'btrfs' as const;

  constructor(
    readonly root: string,
    /** The sparse image backing the pool, or undefined when `root` itself is on btrfs. */
    private readonly image: { file: string; size: string } | undefined,
  ) {}

  tools(): Tool[] {
    const btrfs = { command: 'btrfs', debianPackage: 'btrfs-progs', why: 'snapshots of stages' };
    if (!this.image) return [btrfs];
    return [
      btrfs,
      { command: 'mkfs.btrfs', debianPackage: 'btrfs-progs', why: 'formats the loopback pool' },
      { command: 'mount', debianPackage: 'mount', why: 'mounts the loopback pool' },
      { command: 'truncate', debianPackage: 'coreutils', why: 'makes the sparse pool image' },
    ];
  }

  async open(): Promise<void> {
    if (!this.image) {
      mkdirSync(this.root, { recursive: true, mode: 0o700 });
      return;
    }
    if (isMountPoint(this.root)) return;
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    const fresh = !existsSync(this.image.file);
    if (fresh) {
      // Made under a temporary name and renamed once formatted: a pool image that exists is a btrfs filesystem.
      const partial = `${this.image.file}.partial`;
      rmSync(partial, { force: true });
      await run(['truncate', '-s', this.image.size, partial]);
      chmodSync(partial, 0o600); // it holds every machine's files, secrets included
      await run(['mkfs.btrfs', '-q', '-L', path.basename(path.dirname(this.image.file)), partial], { timeout: 60_000 });
      renameSync(partial, this.image.file);
    }
    await run(['mount', '-o', 'loop,noatime', this.image.file, this.root], { timeout: 60_000 });
    chmodSync(this.root, 0o700);
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
      // A plain directory may hold subvolumes (a cache pull's staging): rm cannot cross into them.
      await this.removeSubvolumesIn(target, 2);
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

  space(): { sizeBytes: number; freeBytes: number } | undefined {
    return poolSpace(this.root);
  }

  /**
   * From btrfs quota groups, turned on only while measuring: with quotas on, btrfs's cleaner
   * accounts every extent of every deleted root, which slowed restores down by seconds. Only in a
   * loopback pool the lab owns; on the host's own btrfs, unknown.
   */
  async exclusiveBytes(targets: readonly string[]): Promise<(number | undefined)[]> {
    if (!this.image || targets.length === 0) return targets.map(() => undefined);
    await run(['btrfs', 'quota', 'enable', this.root]);
    try {
      await run(['btrfs', 'quota', 'rescan', '-w', this.root], { timeout: 10 * 60_000 });
      const ids = new Map<string, string>();
      for (const line of (await run(['btrfs', 'subvolume', 'list', this.root])).stdout.split('\n')) {
        const match = /^ID (\d+) .* path (.+)$/.exec(line.trim());
        if (match) ids.set(path.join(this.root, match[2]!), match[1]!);
      }
      const exclusive = new Map<string, number>();
      for (const line of (await run(['btrfs', 'qgroup', 'show', '--raw', this.root])).stdout.split('\n')) {
        const [group, , excl] = line.trim().split(/\s+/);
        if (group?.startsWith('0/')) exclusive.set(group.slice(2), Number(excl));
      }
      return targets.map((target) => exclusive.get(ids.get(target) ?? ''));
    } finally {
      await run(['btrfs', 'quota', 'disable', this.root], { allowFailure: true });
    }
  }

  async exportSnapshot(snapshot: string, file: string, parent?: string): Promise<void> {
    mkdirSync(path.dirname(file), { recursive: true });
    const partial = `${file}.partial`;
    await run(['btrfs', 'send', '-q', ...(parent ? ['-p', parent] : []), '-f', partial, snapshot], { timeout: STREAM_TIMEOUT_MS });
    renameSync(partial, file);
  }

  /** What send writes into a stream for a subvolume: its received UUID when it was itself received, else its own. */
  async identity(snapshot: string): Promise<string | undefined> {
    const { stdout } = await run(['btrfs', 'subvolume', 'show', snapshot]);
    const field = (name: string) => new RegExp(`^\\s*${name}:\\s*(\\S+)`, 'm').exec(stdout)?.[1];
    const received = field('Received UUID');
    return received && received !== '-' ? received : field('UUID');
  }

  /** receive finds an incremental stream's parent among every subvolume of the filesystem, by either UUID. */
  async heldIdentities(): Promise<Set<string>> {
    const { stdout } = await run(['btrfs', 'subvolume', 'list', '-u', '-R', this.root]);
    const held = new Set<string>();
    for (const match of stdout.matchAll(/\breceived_uuid (\S+)\s+uuid (\S+)/g)) for (const id of [match[1]!, match[2]!]) if (id !== '-') held.add(id);
    return held;
  }

  /**
   * receive names the subvolume as it was named where it was sent, and a read-only subvolume
   * cannot move to another directory: it is received in a directory of `staging`, then
   * snapshotted read-only into place (a read-only snapshot keeps the received UUID, so what is
   * built on it can be received here later).
   */
  async importSnapshot(file: string, target: string, staging: string): Promise<void> {
    mkdirSync(staging, { recursive: true });
    const dir = mkdtempSync(path.join(staging, 'receive-'));
    try {
      // --chroot: a stream can only write inside the directory it is received in.
      await run(['btrfs', 'receive', '-q', '--chroot', '-f', file, dir], { timeout: STREAM_TIMEOUT_MS });
      const [received, ...more] = readdirSync(dir);
      if (!received || more.length > 0) throw new Error(`btrfs receive of ${file} made ${more.length + (received ? 1 : 0)} subvolumes, not one`);
      await this.snapshot(path.join(dir, received), target, { readonly: true });
    } finally {
      await this.remove(dir);
    }
  }

  async leftovers(): Promise<string[]> {
    const found = mountsUnder(this.root).map((mount) => `mount ${mount}`);
    if (this.image) for (const device of loopDevicesOf(this.image.file)) found.push(`loop device ${device} (${this.image.file})`);
    if (existsSync(this.root) && !isMountPoint(this.root)) found.push(`pool ${this.root}`);
    if (this.image && existsSync(this.image.file)) found.push(`pool image ${this.image.file}`);
    if (this.image && existsSync(`${this.image.file}.partial`)) found.push(`unfinished pool image ${this.image.file}.partial`);
    return found;
  }

  /** Deletes every subvolume (on the host's own btrfs) or unmounts the loopback pool, then the pool itself. */
  async destroy(): Promise<void> {
    if (this.image) {
      for (const mount of mountsUnder(this.root)) await run(['umount', mount], { timeout: 60_000 });
      // The loop device goes with the file system's last mount. A machine of another lab started while
      // this pool was mounted holds a copy of the mount in its namespace (the host's mounts do not
      // propagate), and the device stays until that machine stops: waited for a while, then listed
      // by lab doctor (leftovers).
      const image = this.image.file;
      await holdsWithin(() => loopDevicesOf(image).length === 0, { within: LOOP_RELEASE_MS, every: NORMAL });
    } else if (existsSync(this.root)) {
      await this.removeSubvolumesIn(this.root, 3);
    }
    if (existsSync(this.root)) await run(['rm', '-rf', '--one-file-system', '--', this.root], { timeout: 30 * 60_000 });
    if (this.image) for (const file of [this.image.file, `${this.image.file}.partial`]) rmSync(file, { force: true });
  }

  /** Subvolumes (roots, snapshots, images) sit a few levels down in the pool's plain directories. */
  private async removeSubvolumesIn(dir: string, depth: number): Promise<void> {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const child = path.join(dir, entry.name);
      if (isSubvolume(child)) await this.remove(child);
      else if (depth > 1) await this.removeSubvolumesIn(child, depth - 1);
    }
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
