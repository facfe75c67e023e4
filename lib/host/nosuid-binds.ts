import { closeSync, constants, existsSync, lchownSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { HostDriver } from '../driver.js';
import { HostError } from '../errors.js';
import { run } from '../exec.js';
import { LAB_RUN_DIR } from '../paths.js';
import { acquireLock } from '../state/lock.js';
import type { Tool } from './prereq.js';

/**
 * A writable bind's source, bound onto itself on the host with nosuid,nodev while a machine uses
 * it: a file the machine makes setuid, or a device node it makes, is then neither setuid nor a
 * device through the host's path either (nosuid,nodev on the machine's mount alone would not stop
 * another user of the host from using that path). nspawn's bind of that mount copies its flags.
 *
 * The bind is recursive, so that the host still sees what is mounted under the source (the
 * machine does not: its binds are not recursive), and keeps the propagation it gets: bound from a
 * shared mount, it is a peer of it, so that what is mounted or unmounted in it happens in the
 * source too, and its own unmount reaches the copies mount propagation made of it in other
 * namespaces. One mount per source, whatever the number of labs and machines using it:
 * a registry in /run/lab (gone at reboot, with the mounts) names the machines that hold each one,
 * and the last to let go unmounts it. Each machine holds it while it runs or is built.
 */

export interface MountInfo {
  id: number;
  parent: number;
  mountPoint: string;
  /** The mount's own options (rw, nosuid, nodev, noexec, relatime, ...), not the file system's. */
  options: string[];
}

/** /proc/self/mountinfo, one mount a line; mount points have their spaces and newlines octal-escaped. */
export function parseMountInfo(text: string): MountInfo[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [id, parent, , , mountPoint, options] = line.split(' ');
      return { id: Number(id), parent: Number(parent), mountPoint: mountPoint!.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))), options: options!.split(',') };
    });
}

/** What the driver asks of the host: the mount table, the mount a path shows, commands, the boot, disarming a tree. */
export interface MountHost {
  mounts(): MountInfo[];
  /** The id of the mount that `dir` shows now (the top of what is stacked there), or undefined when it cannot be opened. */
  visible(dir: string): number | undefined;
  run(argv: string[]): Promise<void>;
  bootId(): string;
  disarm(dir: string, leave: ReadonlySet<string>, since: number): void;
}

const OPEN_DIRECTORY = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** File systems that keep times in whole seconds (or two): a change right after `since` may show a little before it. */
const CTIME_SLACK_MS = 2000;

/**
 * What a machine may have left in a writable bind that would be armed once its source is no longer
 * nosuid,nodev (after lab lets go of it): setuid and setgid bits and file capabilities, which the
 * kernel clears when a regular file is given to its owner again (chown), and device nodes, which
 * are removed. Capabilities cannot be seen from here, so every file changed since `since` (when lab
 * bound the source: a machine cannot set a change time back) is given back, and every setuid or
 * setgid one; the others keep their change time. Directories are walked through their open
 * descriptors (/proc/self/fd/N/<name>), never by a path whose parents someone could swap for a link
 * meanwhile, and nothing is followed; the mount points in `leave` (other file systems, or other
 * sources held still) are left as they are.
 */
export function disarm(dir: string, leave: ReadonlySet<string>, since: number): void {
  const walk = (fd: number, shown: string) => {
    for (const name of readdirSync(`/proc/self/fd/${fd}`)) {
      const entry = `/proc/self/fd/${fd}/${name}`;
      const full = path.join(shown, name);
      try {
        const stat = lstatSync(entry);
        if (stat.isDirectory() && !leave.has(full)) {
          const child = openSync(entry, OPEN_DIRECTORY);
          try {
            walk(child, full);
          } finally {
            closeSync(child);
          }
        } else if (stat.isFile() && (stat.mode & 0o6000 || stat.ctimeMs >= since - CTIME_SLACK_MS)) lchownSync(entry, stat.uid, stat.gid);
        else if (stat.isBlockDevice() || stat.isCharacterDevice()) unlinkSync(entry);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? '';
        if (['ENOENT', 'ELOOP', 'ENOTDIR'].includes(code)) continue; // gone, or swapped for a link, since it was listed: nothing of it is followed
        if (code === 'EROFS') throw error; // nothing was written there
        throw new HostError(`cannot disarm ${full} (${code || (error as Error).message}) in the writable bind source ${dir}: it stays mounted nosuid,nodev`, 'see what keeps it from being changed (chattr +i?), then lab down or lab destroy again');
      }
    }
  };
  let fd: number;
  try {
    fd = openSync(dir, OPEN_DIRECTORY);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return; // removed since: nothing left to arm
    throw error;
  }
  try {
    walk(fd, dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EROFS') throw error; // a read-only file system: nothing to disarm
  } finally {
    closeSync(fd);
  }
}

export const realMountHost: MountHost = {
  mounts: () => parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')),
  visible(dir) {
    let fd: number;
    try {
      fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    } catch {
      return undefined;
    }
    try {
      return Number(/^mnt_id:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1]);
    } finally {
      closeSync(fd);
    }
  },
  run: async (argv) => void (await run(argv, { timeout: 60_000 })),
  bootId: () => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
  disarm,
};

interface Holder {
  /** The lab's state directory: one per lab on the host. */
  lab: string;
  machine: string;
}

/** One source lab keeps bound onto itself. */
interface Entry {
  source: string;
  bootId: string;
  /** The mount the source showed before lab's: its parent (written before mounting, so that a kill between the two finds it). */
  below: number;
  /** When lab made the record (ms): what the machines changed in the source since is disarmed when it is let go of. */
  since: number;
  /** lab's mount, once made and flagged. */
  mountId?: number;
  holders: Holder[];
}

const NOSUID = ['nosuid', 'nodev'];

/** Registry operations of this process, one at a time (labs of other processes wait on the lock file). */
let queue: Promise<unknown> = Promise.resolve();

export class NosuidBinds implements HostDriver {
  private readonly registry: string;
  private readonly host: MountHost;

  constructor(
    /** This lab's state directory: how the registry names its machines. */
    private readonly lab: string,
    options: { registry?: string; host?: MountHost } = {},
  ) {
    this.registry = options.registry ?? path.join(LAB_RUN_DIR, 'nosuid-binds.json');
    this.host = options.host ?? realMountHost;
  }

  tools(): Tool[] {
    return [
      { command: 'mount', debianPackage: 'mount', why: 'makes writable bind sources nosuid,nodev on the host' },
      { command: 'umount', debianPackage: 'mount', why: 'removes them' },
    ];
  }

  describe(): string {
    return 'writable bind sources bound onto themselves nosuid,nodev on the host while a machine uses them';
  }

  /** Makes each source nosuid,nodev on the host (once per source, whoever else holds it) for `machine`, until it lets go. */
  async hold(machine: string, sources: readonly string[]): Promise<void> {
    if (sources.length === 0) return;
    await this.update(async (entries) => {
      for (const source of sources) {
        let entry = entries.find((e) => e.source === source);
        if (!entry) entries.push((entry = { source, bootId: this.host.bootId(), below: this.visible(source), since: Date.now(), holders: [] }));
        if (!entry.holders.some((h) => h.lab === this.lab && h.machine === machine)) entry.holders.push({ lab: this.lab, machine });
        if (entry.mountId !== undefined) continue;
        this.save(entries); // before the mount: what a kill leaves between the two is found, and removed with its holder
        await this.mount(entry, entries);
      }
    });
  }

  /** This lab's machines that `lets` says no longer use their sources let go of them; the mounts nobody holds are removed. */
  async release(lets: (machine: string) => boolean): Promise<void> {
    const mine = (h: Holder) => h.lab === this.lab && lets(h.machine);
    if (!this.read().some((e) => e.holders.length === 0 || e.holders.some(mine))) return; // nothing to let go of or to sweep: no lock, no write
    await this.update(async (entries) => {
      for (const entry of entries) entry.holders = entry.holders.filter((h) => !mine(h));
    });
  }

  async leftovers(): Promise<string[]> {
    return this.current()
      .map((entry) => ({ entry, machines: entry.holders.filter((h) => h.lab === this.lab).map((h) => h.machine) }))
      .filter(({ machines }) => machines.length > 0)
      .map(({ entry, machines }) => `nosuid,nodev bind of ${entry.source} on the host (a writable bind of ${machines.join(', ')})`);
  }

  async destroy(): Promise<void> {
    await this.release(() => true);
  }

  /** Under the registry's lock: the entries, with what is stale dropped; `change` edits them; the mounts nobody holds are removed; saved. */
  private update(change: (entries: Entry[]) => Promise<void>): Promise<void> {
    const next = queue.then(async () => {
      const lock = await acquireLock(`${this.registry}.lock`, `(nosuid binds of ${this.lab})`, { waitMs: 120_000, what: "lab's registry of nosuid binds", lendable: false });
      try {
        // A reboot unmounted those of an earlier boot without disarming them: done now, before anything binds them again.
        const bootId = this.host.bootId();
        for (const stale of this.read().filter((e) => e.bootId !== bootId)) this.host.disarm(stale.source, mountPointsUnder(stale.source, this.host.mounts()), stale.since);
        const entries = this.current();
        try {
          await change(entries);
        } finally {
          await this.sweep(entries);
          this.save(entries);
        }
      } finally {
        lock.release();
      }
    });
    queue = next.catch(() => undefined);
    return next;
  }

  private read(): Entry[] {
    try {
      return JSON.parse(readFileSync(this.registry, 'utf8')) as Entry[];
    } catch {
      return [];
    }
  }

  /** Written to a temporary file and renamed: a reader never sees half a registry. */
  private save(entries: Entry[]): void {
    mkdirSync(path.dirname(this.registry), { recursive: true, mode: 0o700 });
    const partial = `${this.registry}.${process.pid}.tmp`;
    writeFileSync(partial, `${JSON.stringify(entries, null, 2)}\n`, { mode: 0o600 });
    renameSync(partial, this.registry);
  }

  /**
   * The entries of this boot (mounts do not outlive one), without those whose mount someone else
   * removed, and without holders whose lab is gone (its state directory removed by hand).
   */
  private current(): Entry[] {
    const bootId = this.host.bootId();
    const mounts = this.host.mounts();
    return this.read()
      .filter((e) => e.bootId === bootId)
      .filter((e) => e.mountId === undefined || mounts.some((m) => m.id === e.mountId && m.mountPoint === e.source))
      .map((e) => ({ ...e, holders: e.holders.filter((h) => existsSync(h.lab)) }));
  }

  private visible(source: string): number {
    const id = this.host.visible(source);
    if (id === undefined || Number.isNaN(id)) throw new HostError(`cannot open the bind source ${source} to make it nosuid,nodev`);
    return id;
  }

  /**
   * lab's mount of the entry: the one it recorded, or (after a kill while it was being made) the
   * one on top of the source right on what the source showed before.
   */
  private layer(entry: Entry, mounts: MountInfo[]): MountInfo | undefined {
    const top = this.host.visible(entry.source);
    return mounts.find((m) => m.id === (entry.mountId ?? top) && m.mountPoint === entry.source && (entry.mountId !== undefined || m.parent === entry.below));
  }

  /** Binds the source onto itself, with its own options plus nosuid,nodev; checked. */
  private async mount(entry: Entry, entries: Entry[]): Promise<void> {
    const { source } = entry;
    let layer = this.layer(entry, this.host.mounts());
    if (!layer) {
      // Not made yet: on top of what the source shows now (something may have been mounted there since the record was written).
      entry.below = this.visible(source);
      this.save(entries);
      await this.host.run(['mount', '--rbind', source, source]);
      layer = this.layer(entry, this.host.mounts());
      if (!layer) throw new HostError(`mount --rbind ${source} ${source} made no mount lab can find on top of ${source}`);
    }
    const options = [...layer.options.filter((o) => !NOSUID.includes(o)), ...NOSUID];
    await this.host.run(['mount', '-o', ['remount', 'bind', ...options].join(','), source]);
    const flagged = this.host.mounts().find((m) => m.id === layer.id);
    if (!flagged || !NOSUID.every((o) => flagged.options.includes(o))) throw new HostError(`${source} is not nosuid,nodev after mount -o remount (its options: ${flagged?.options.join(',') ?? 'gone'})`);
    entry.mountId = layer.id;
  }

  /**
   * Unmounts what nobody holds, when it is on top of its source and no held mount lies under it
   * (a lazy unmount takes what is mounted under it along); what waits is tried again next time.
   */
  private async sweep(entries: Entry[]): Promise<void> {
    for (const entry of entries.filter((e) => e.holders.length === 0)) {
      const mounts = this.host.mounts();
      const layer = this.layer(entry, mounts);
      if (layer) {
        const onTop = this.host.visible(entry.source) === layer.id;
        const holdsUnder = entries.some((other) => other.holders.length > 0 && other.mountId !== undefined && isUnder(other.mountId, layer.id, mounts));
        if (!onTop || holdsUnder) continue;
        this.host.disarm(entry.source, mountPointsUnder(entry.source, mounts), entry.since);
        await this.host.run(['umount', '--lazy', entry.source]);
      }
      entries.splice(entries.indexOf(entry), 1);
    }
  }
}

function mountPointsUnder(dir: string, mounts: MountInfo[]): Set<string> {
  return new Set(mounts.map((m) => m.mountPoint).filter((point) => point.startsWith(`${dir}/`)));
}

/** Whether mount `id` lies under mount `ancestor` in the mount tree. */
function isUnder(id: number, ancestor: number, mounts: MountInfo[]): boolean {
  const parents = new Map(mounts.map((m) => [m.id, m.parent]));
  for (let current = parents.get(id), hops = 0; current !== undefined && hops < 1000; current = parents.get(current), hops++) {
    if (current === ancestor) return true;
    if (parents.get(current) === current) return false;
  }
  return false;
}
