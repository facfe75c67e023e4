/**
 * What a machine, or another user of the host, can do with what a lab shares with it: a writable
 * bind (setuid files and device nodes made in it are neither, also through the host's path, and
 * are disarmed when lab lets go of it; no host mount under it reaches the machine; nothing of it is
 * left after lab destroy, also after a kill -9), bind sources and targets refused before anything
 * is made, fixtures that stay in the fixtures directory and fixtures that are directories. The
 * other user is `nobody` (asNobody).
 */
import { execa } from 'execa';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAST, poll } from '../../lib/wait.js';
import { asNobody, hostTraces, lab, labOk, mountsAt, repoRoot, soloLab, uniqueName } from './helpers.js';

const made: string[] = [];
const tmpfsMounts: string[] = [];
const loopDevices: string[] = [];
afterAll(async () => {
  for (const config of made) await lab(['--config', config, 'destroy']);
  for (const dir of tmpfsMounts) await execa('umount', [dir], { reject: false });
  for (const device of loopDevices) await execa('losetup', ['-d', device], { reject: false });
});

/** The major and minor numbers of a device number, as the kernel packs them. */
const majorMinor = (dev: number) => [(dev >> 8) & 0xfff, (dev & 0xff) | ((dev >> 12) & 0xfff00)];

describe('a writable bind', () => {
  const name = uniqueName('sec');
  let config: string;
  let source: string;
  /** A loop device of the host's (as another lab's pool is), with a mark at its start that anyone who opens it reads. */
  let disk: string;
  const inMachine = (script: string) => lab(['--config', config, 'exec', 'solo', '--', 'sh', '-c', script]);

  beforeAll(async () => {
    let dir: string;
    ({ dir, config } = soloLab({}, [`name: ${name}`], ['binds: [{ source: data, target: /data, readonly: false }]']));
    made.push(config);
    source = path.join(dir, 'data');
    // A host mount under the source (as another lab's pool would be), made before the lab binds it.
    mkdirSync(path.join(source, 'inner'), { recursive: true });
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'lab-security-test', path.join(source, 'inner')]);
    tmpfsMounts.push(path.join(source, 'inner'));
    writeFileSync(path.join(source, 'inner', 'marker'), 'the host only\n');
    writeFileSync(path.join(dir, 'disk.img'), Buffer.concat([Buffer.from('ANOTHER-LABS-POOL'), Buffer.alloc(1 << 20)]));
    disk = (await execa('losetup', ['--find', '--show', path.join(dir, 'disk.img')])).stdout.trim();
    loopDevices.push(disk);
    // nobody can reach the source: what protects the host is nosuid,nodev, not a closed directory.
    for (const d of [dir, source]) chmodSync(d, 0o755);
  });

  it("gives nobody on the host neither a setuid root shell nor a device made in the machine, and is nosuid,nodev in the machine", async () => {
    await labOk(['--config', config, 'up']);
    const onHost = mountsAt(source);
    expect(onHost).toHaveLength(1);
    expect(onHost[0]!.options).toEqual(expect.arrayContaining(['nosuid', 'nodev']));

    const copied = await inMachine('cp /bin/sh /data/sh && chmod 4755 /data/sh');
    expect(copied.exitCode, copied.stderr).toBe(0);
    const shell = statSync(path.join(source, 'sh'));
    expect([shell.uid, shell.mode & 0o7777]).toEqual([0, 0o4755]); // it is a setuid root file: the test means something
    const euid = await asNobody([path.join(source, 'sh'), '-p', '-c', 'id -u']); // -p: the shell keeps an effective uid it was given
    expect(euid.exitCode, euid.stderr).toBe(0);
    expect(euid.stdout.trim()).toBe('65534');

    // The host's loop device, made in the machine readable and writable by anyone.
    const [major, minor] = majorMinor(statSync(disk).rdev);
    const mknod = await inMachine(`mknod -m 0666 /data/disk b ${major} ${minor}`);
    if (mknod.exitCode === 0) {
      expect(statSync(path.join(source, 'disk')).isBlockDevice()).toBe(true);
      for (const reader of [asNobody, (argv: string[]) => execa(argv[0]!, argv.slice(1), { reject: false })]) {
        const read = await reader(['head', '-c', '17', path.join(source, 'disk')]);
        expect(read.stdout).not.toContain('ANOTHER-LABS-POOL');
        expect(read.exitCode).not.toBe(0);
        expect(read.stderr).toContain('Permission denied');
      }
    } else {
      expect(existsSync(path.join(source, 'disk'))).toBe(false);
    }

    const mountinfo = (await labOk(['--config', config, 'exec', 'solo', '--', 'cat', '/proc/self/mountinfo'])).split('\n').map((line) => line.split(' '));
    const data = mountinfo.filter((fields) => fields[4] === '/data');
    expect(data).toHaveLength(1);
    expect(data[0]![5]!.split(',')).toEqual(expect.arrayContaining(['rw', 'nosuid', 'nodev']));
    // Not recursive: the host's mount under the source stays out of the machine; the host still sees it.
    expect(mountinfo.some((fields) => fields[4]?.startsWith('/data/'))).toBe(false);
    expect((await inMachine('test -e /data/inner/marker')).exitCode).not.toBe(0);
    expect(readFileSync(path.join(source, 'inner', 'marker'), 'utf8')).toBe('the host only\n');
  });

  it('is gone from the host after lab destroy, what the machine left in it disarmed, also after lab up was killed with the bind made', async () => {
    await labOk(['--config', config, 'destroy']);
    expect(mountsAt(source)).toEqual([]);
    expect(hostTraces(name)).toEqual([]);
    // No longer nosuid,nodev: the shell the machine made setuid is not any more, the device node is gone.
    expect(statSync(path.join(source, 'sh')).mode & 0o7777).toBe(0o755);
    expect((await asNobody([path.join(source, 'sh'), '-p', '-c', 'id -u'])).stdout.trim()).toBe('65534');
    expect(existsSync(path.join(source, 'disk'))).toBe(false);
    expect(readFileSync(path.join(source, 'inner', 'marker'), 'utf8')).toBe('the host only\n'); // what was under it, untouched

    const child = execa(process.execPath, [path.join(repoRoot, 'bin', 'lab.js'), '--config', config, 'up'], { reject: false, stdin: 'ignore' });
    await poll('lab up to bind the source nosuid,nodev', async () => {
      if (child.exitCode !== null) throw new Error(`lab up ended (exit ${child.exitCode}) before it bound ${source}`);
      return mountsAt(source).length > 0;
    }, { within: 10 * 60_000, every: FAST });
    child.kill('SIGKILL');
    await child;
    expect(mountsAt(source).length).toBeGreaterThan(0);
    const doctor = await lab(['--config', config, 'doctor']);
    expect(doctor.stdout).toContain(`nosuid,nodev bind of ${source} on the host (a writable bind of solo)`);
    await labOk(['--config', config, 'destroy']);
    expect(mountsAt(source)).toEqual([]);
    expect(hostTraces(name)).toEqual([]);
  });
});

describe('bind sources and targets', () => {
  it('a source through a symlink to /etc, a .. escape, a source outside the config, a target under /proc: exit 2 naming the field, nothing made', async () => {
    const name = uniqueName('badbind');
    const { dir, config } = soloLab({}, [`name: ${name}`], ['binds: [{ source: etc, target: /srv/etc }]']);
    symlinkSync('/etc', path.join(dir, 'etc'));
    const cases: [string, string][] = [
      ['{ source: etc, target: /srv/etc }', `machines.0.binds.0.source: ${path.join(dir, 'etc')} (it resolves to /etc) is a system directory: never bound`],
      ['{ source: ../../../../../../etc, target: /srv/etc, allowOutside: true }', 'machines.0.binds.0.source: /etc is a system directory: never bound'],
      [`{ source: ${repoRoot}, target: /srv/lab }`, `machines.0.binds.0.source: ${repoRoot} is outside the config's directory ${dir}: say allowOutside: true`],
      ['{ source: ., target: /proc/sys }', "machines.0.binds.0.target: /proc/sys is under /proc, which the machine's kernel and systemd mount themselves"],
    ];
    for (const [bind, message] of cases) {
      writeFileSync(config, readFileSync(config, 'utf8').replace(/binds: \[.*\]/, `binds: [${bind}]`));
      const result = await lab(['--config', config, 'up']);
      expect(result.exitCode, bind).toBe(2);
      expect(result.stderr).toContain(message);
      expect(hostTraces(name)).toEqual([]);
    }
  });
});

describe('fixtures', () => {
  it("whose name leads out of the fixtures directory exit 2 naming the stage and the fixture, and write nothing on the host", async () => {
    const name = uniqueName('escape');
    const escaped = `/tmp/lab-escaped-${name}`;
    // fixtures/ is /tmp/lab-e2e-*/fixtures: two levels up is /tmp.
    const stage = `#!/bin/sh\n# lab: fixtures=../../lab-escaped-${name}\ntrue\n`;
    const { dir, config } = soloLab({ 'leak.sh': stage }, [`name: ${name}`]);
    mkdirSync(path.join(dir, 'fixtures'));
    const result = await lab(['--config', config, 'up']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`stage solo@leak: fixture '../../lab-escaped-${name}' has a '..'`);
    expect(existsSync(escaped)).toBe(false);
    writeFileSync(path.join(dir, 'stages', 'solo', 'leak.sh'), '#!/bin/sh\n# lab: fixtures=shadow\ntrue\n');
    symlinkSync('/etc/shadow', path.join(dir, 'fixtures', 'shadow'));
    const linked = await lab(['--config', config, 'up']);
    expect(linked.exitCode).toBe(2);
    expect(linked.stderr).toContain(`stage solo@leak: fixture 'shadow' leads out of the fixtures directory ${path.join(dir, 'fixtures')}, to /etc/shadow`);
    expect(hostTraces(name)).toEqual([]);
  });

  it('that is a directory is copied whole under $LAB_FIXTURES, and a file changed in it rebuilds the stage', async () => {
    const name = uniqueName('fixdir');
    const stage = '#!/bin/sh\n# lab: fixtures=roles/web\nset -e\nrm -rf /etc/lab-role\ncp -r "$LAB_FIXTURES/roles/web" /etc/lab-role\n';
    const { dir, config } = soloLab({ 'role.sh': stage }, [`name: ${name}`]);
    made.push(config);
    const role = path.join(dir, 'fixtures', 'roles', 'web');
    mkdirSync(path.join(role, 'tasks'), { recursive: true });
    writeFileSync(path.join(role, 'tasks', 'main.yml'), '- ping:\n');
    writeFileSync(path.join(role, 'README'), 'web role\n');
    await labOk(['--config', config, 'up']);
    expect(await labOk(['--config', config, 'exec', 'solo', '--', 'cat', '/etc/lab-role/tasks/main.yml', '/etc/lab-role/README'])).toBe('- ping:\nweb role\n');
    writeFileSync(path.join(role, 'tasks', 'main.yml'), '- ping: {}\n');
    const report = JSON.parse(await labOk(['--config', config, 'up', '--json'])) as { machines: { stages: { name: string; action: string }[] }[] };
    expect(report.machines[0]!.stages.map((s) => `${s.name}:${s.action}`)).toEqual(['system:cached', 'role:build']);
    expect(await labOk(['--config', config, 'exec', 'solo', '--', 'cat', '/etc/lab-role/tasks/main.yml'])).toBe('- ping: {}\n');
    await labOk(['--config', config, 'destroy']);
    expect(hostTraces(name)).toEqual([]);
  });
});
