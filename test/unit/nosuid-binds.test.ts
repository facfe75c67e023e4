/**
 * The nosuid,nodev binds of writable bind sources, against a fake mount table (./fakes.ts): one
 * mount per source whoever holds it, removed by the last to let go, and what a kill, a reboot,
 * a mount of the host's own or a source inside another leaves.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { disarm, NosuidBinds, parseMountInfo } from '../../lib/host/nosuid-binds.js';
import { Events, FakeMountTable } from './fakes.js';

function host() {
  const dir = mkdtempSync(path.join(tmpdir(), 'lab-nosuid-'));
  const events = new Events();
  const table = new FakeMountTable(events);
  const registry = path.join(dir, 'run', 'nosuid-binds.json');
  /** A lab: its state directory exists (a lab whose directory is gone holds nothing). */
  const lab = (name: string) => {
    mkdirSync(path.join(dir, name), { recursive: true });
    return new NosuidBinds(path.join(dir, name), { registry, host: table });
  };
  const at = (source: string) => table.mounts().filter((m) => m.mountPoint === source);
  return { dir, events, table, registry, lab, at, commands: () => events.of('host') };
}

describe('nosuid binds', () => {
  it('bind a source onto itself once, with its own options plus nosuid,nodev, until the last machine of the last lab lets go', async () => {
    const { lab, at, commands, events } = host();
    const [one, two] = [lab('one'), lab('two')];
    await one.hold('a', ['/repo/data']);
    await one.hold('b', ['/repo/data']);
    await two.hold('a', ['/repo/data']);
    expect(commands()).toEqual(['mount --rbind /repo/data /repo/data', 'mount -o remount,bind,rw,relatime,nosuid,nodev /repo/data']);
    expect(at('/repo/data').map((m) => m.options)).toEqual([['rw', 'relatime', 'nosuid', 'nodev']]);
    expect(await one.leftovers()).toEqual(['nosuid,nodev bind of /repo/data on the host (a writable bind of a, b)']);
    await one.release((m) => m === 'a');
    await one.destroy();
    expect(at('/repo/data')).toHaveLength(1); // lab two's machine still uses it
    expect(await one.leftovers()).toEqual([]);
    await two.release((m) => m === 'a');
    expect(events.since(events.all.length - 2)).toEqual(['disarm /repo/data', 'host umount --lazy /repo/data']);
    expect(at('/repo/data')).toEqual([]);
  });

  it("keep a source's read-only and noexec, and go on top of a mount already there, which they leave", async () => {
    const { lab, table, at, commands } = host();
    const own = table.mountAt('/srv/share', ['ro', 'noexec', 'relatime']);
    const binds = lab('one');
    await binds.hold('a', ['/srv/share']);
    expect(commands()).toContain('mount -o remount,bind,ro,noexec,relatime,nosuid,nodev /srv/share');
    expect(at('/srv/share').map((m) => [m.id === own, m.parent === own])).toEqual([[true, false], [false, true]]);
    await binds.destroy();
    expect(at('/srv/share').map((m) => m.id)).toEqual([own]);
  });

  it('after a kill between the record and the flags, take over the mount that was made instead of stacking another', async () => {
    const { lab, table, registry, at, commands } = host();
    const binds = lab('one');
    await binds.hold('a', ['/repo/data']);
    // What a kill right after mount --rbind leaves: the record without its mount id, the mount without its flags.
    const [entry] = JSON.parse(readFileSync(registry, 'utf8'));
    writeFileSync(registry, JSON.stringify([{ ...entry, mountId: undefined }]));
    await table.run(['mount', '-o', 'remount,bind,rw,relatime', '/repo/data']);
    const before = commands().length;
    await binds.hold('a', ['/repo/data']);
    expect(commands().slice(before)).toEqual(['mount -o remount,bind,rw,relatime,nosuid,nodev /repo/data']);
    expect(at('/repo/data')).toHaveLength(1);
    // The same kill, then lab destroy: the half-made mount goes too.
    writeFileSync(registry, JSON.stringify([{ ...entry, mountId: undefined }]));
    await binds.destroy();
    expect(at('/repo/data')).toEqual([]);
  });

  it('forget what an earlier boot (disarmed first) or someone else removed, and machines of a lab whose directory is gone', async () => {
    const { dir, lab, table, at, events } = host();
    const binds = lab('one');
    await binds.hold('a', ['/repo/data']);
    await table.run(['umount', '--lazy', '/repo/data']); // someone unmounted it
    await binds.hold('a', ['/repo/data']);
    expect(at('/repo/data')).toHaveLength(1);
    table.boot = 'boot-2'; // a reboot: the mounts are gone, not what the machines left in their sources
    table.mountAt('/elsewhere');
    const mark = events.mark();
    await binds.hold('b', ['/repo/other']);
    expect(events.since(mark)[0]).toBe('disarm /repo/data');
    expect(await binds.leftovers()).toEqual(['nosuid,nodev bind of /repo/other on the host (a writable bind of b)']);
    const gone = lab('gone');
    await gone.hold('a', ['/repo/other']);
    rmSync(path.join(dir, 'gone'), { recursive: true });
    await binds.release(() => true);
    expect(at('/repo/other')).toEqual([]);
  });

  it('of a source inside another one: the outer mount waits for the inner one to be let go of, which a lazy unmount would take along', async () => {
    const { lab, at } = host();
    const [outer, inner] = [lab('outer'), lab('inner')];
    await outer.hold('a', ['/repo']);
    await inner.hold('a', ['/repo/data']);
    await outer.destroy();
    expect(at('/repo')).toHaveLength(1);
    expect(at('/repo/data')).toHaveLength(1);
    await inner.destroy();
    expect([at('/repo'), at('/repo/data')]).toEqual([[], []]);
  });

  it('leave a source disarmed: no setuid or setgid bit, no file capability, no device node; links and other mounts left alone', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-disarm-'));
    const file = (relative: string, mode: number) => {
      mkdirSync(path.dirname(path.join(dir, relative)), { recursive: true });
      writeFileSync(path.join(dir, relative), '#!/bin/sh\n');
      chmodSync(path.join(dir, relative), mode);
    };
    file('sh', 0o4755);
    file('deep/er/tool', 0o6711);
    file('mounted/sh', 0o4755);
    file('plain', 0o644);
    symlinkSync('/etc/passwd', path.join(dir, 'passwd'));
    const root = process.getuid?.() === 0;
    if (root) {
      execFileSync('mknod', ['-m', '0666', path.join(dir, 'deep', 'disk'), 'b', '7', '0']);
      execFileSync('setcap', ['cap_setuid+ep', path.join(dir, 'plain')]);
    }
    const passwd = statSync('/etc/passwd');
    disarm(dir, new Set([path.join(dir, 'mounted')]), Date.now() - 60_000);
    const mode = (relative: string) => statSync(path.join(dir, relative)).mode & 0o7777;
    expect([mode('sh'), mode('deep/er/tool'), mode('plain')]).toEqual([0o755, 0o711, 0o644]);
    expect(mode('mounted/sh')).toBe(0o4755); // another mount: not this source's
    expect(existsSync(path.join(dir, 'deep', 'disk'))).toBe(false);
    if (root) expect(execFileSync('getcap', [path.join(dir, 'plain')], { encoding: 'utf8' })).toBe('');
    expect(lstatSync(path.join(dir, 'passwd')).isSymbolicLink()).toBe(true);
    expect(statSync('/etc/passwd').ctimeMs).toBe(passwd.ctimeMs); // what a link leads to is not touched
    expect(() => disarm(path.join(dir, 'gone'), new Set(), 0)).not.toThrow();
  });

  it('leave what no machine changed since the source was bound as it was, setuid bits apart', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-disarm-'));
    writeFileSync(path.join(dir, 'old'), 'x');
    writeFileSync(path.join(dir, 'old-setuid'), 'x');
    chmodSync(path.join(dir, 'old-setuid'), 0o4755);
    const [old, oldSetuid] = ['old', 'old-setuid'].map((f) => statSync(path.join(dir, f)).ctimeMs);
    const bound = Date.now() + 60_000; // both are older than the bind
    disarm(dir, new Set(), bound);
    expect(statSync(path.join(dir, 'old')).ctimeMs).toBe(old);
    expect(statSync(path.join(dir, 'old-setuid')).mode & 0o7777).toBe(0o755);
    expect(statSync(path.join(dir, 'old-setuid')).ctimeMs).toBeGreaterThanOrEqual(oldSetuid);
  });

  it('read /proc/self/mountinfo, escapes included', () => {
    const text = '22 27 0:21 / /proc rw,relatime - proc proc rw\n61 27 254:0 /tmp/x /tmp/with\\040space rw,nosuid,nodev,relatime shared:1 - ext4 /dev/vda rw\n';
    expect(parseMountInfo(text)).toEqual([
      { id: 22, parent: 27, mountPoint: '/proc', options: ['rw', 'relatime'] },
      { id: 61, parent: 27, mountPoint: '/tmp/with space', options: ['rw', 'nosuid', 'nodev', 'relatime'] },
    ]);
  });
});
