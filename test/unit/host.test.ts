import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDeb822Sources, parseOneLineSources, pickDebianMirror } from '../../lib/image/apt-sources.js';
import { pathInRoot, resolveInRoot } from '../../lib/root-path.js';
import { fillTemplate } from '../../lib/stages/context.js';
import { acquireLock } from '../../lib/state/lock.js';

const temp = (prefix: string) => mkdtempSync(path.join(tmpdir(), prefix));

describe('apt sources', () => {
  it('finds the Debian mirror in deb822 and one-line formats, skipping security', () => {
    const deb822 = parseDeb822Sources(
      'Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\nTypes: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n',
    );
    expect(pickDebianMirror(deb822)).toBe('http://mirror.example/debian');
    const oneLine = parseOneLineSources('# comment\ndeb-src http://src.example/debian bookworm main\ndeb [arch=amd64] http://ftp.example/debian bookworm main\n');
    expect(pickDebianMirror(oneLine)).toBe('http://ftp.example/debian');
    expect(pickDebianMirror([])).toBeUndefined();
  });
});

describe('writing into a machine root', () => {
  it('follows links the way the machine would, never out of the root', () => {
    const root = temp('lab-root-');
    mkdirSync(path.join(root, 'usr', 'lib'), { recursive: true });
    symlinkSync('usr/lib', path.join(root, 'lib'));
    symlinkSync('/etc', path.join(root, 'escape')); // absolute: the machine's /etc, not the host's
    mkdirSync(path.join(root, 'etc'));
    expect(pathInRoot(root, '/lib/systemd/x')).toBe(path.join(root, 'usr', 'lib', 'systemd', 'x'));
    expect(pathInRoot(root, '/escape/passwd')).toBe(path.join(root, 'etc', 'passwd'));
    expect(pathInRoot(root, '/../../etc/shadow')).toBe(path.join(root, 'etc', 'shadow'));
    // The last component is not followed: writing replaces the link itself.
    expect(pathInRoot(root, '/escape')).toBe(path.join(root, 'escape'));
  });

  it('climbs `..` from where a link leads, follows relative links that climb, and stops on loops', () => {
    const root = temp('lab-root-');
    mkdirSync(path.join(root, 'a', 'b'), { recursive: true });
    mkdirSync(path.join(root, 'c'));
    symlinkSync('a/b', path.join(root, 'lnk'));
    expect(pathInRoot(root, '/lnk/../x')).toBe(path.join(root, 'a', 'x')); // not /x
    expect(pathInRoot(root, '/./lnk/./y')).toBe(path.join(root, 'a', 'b', 'y'));
    symlinkSync('../../c', path.join(root, 'a', 'b', 'up')); // relative, climbing out of a/b
    expect(pathInRoot(root, '/lnk/up/z')).toBe(path.join(root, 'c', 'z'));
    symlinkSync('../../../../../..', path.join(root, 'c', 'far')); // climbing past the root stays in it
    expect(pathInRoot(root, '/c/far/etc/passwd')).toBe(path.join(root, 'etc', 'passwd'));
    symlinkSync('loop2', path.join(root, 'loop1'));
    symlinkSync('loop1', path.join(root, 'loop2'));
    expect(() => pathInRoot(root, '/loop1/x')).toThrow(/too many symlinks/);
  });

  it('refuses a climb out of the root when asked (lab cp), naming the link or the `..`; follows a last link when asked', () => {
    const root = temp('lab-root-');
    mkdirSync(path.join(root, 'etc'));
    symlinkSync('/etc', path.join(root, 'abs'));
    symlinkSync('../..', path.join(root, 'etc', 'up'));
    const refusing = { followLast: true, climbing: 'refuse' as const, fail: (why: string) => new Error(why) };
    expect(resolveInRoot(root, '/abs', refusing)).toBe(path.join(root, 'etc'));
    expect(pathInRoot(root, '/abs')).toBe(path.join(root, 'abs'));
    expect(resolveInRoot(root, '/etc/../x', refusing)).toBe(path.join(root, 'x'));
    expect(() => resolveInRoot(root, '/etc/up/x', refusing)).toThrow("the link /etc/up -> ../.. leads out of the machine's root");
    expect(() => resolveInRoot(root, '/etc/../../x', refusing)).toThrow("'..' climbs out of the machine's root");
    expect(pathInRoot(root, '/etc/up/x')).toBe(path.join(root, 'x')); // a stage's write stays at the machine's /, as the machine would
  });

  it('fills templates and names a missing value', () => {
    expect(fillTemplate('a={{a}} b={{b}}', { a: 1, b: 'x' }, 't')).toBe('a=1 b=x');
    expect(() => fillTemplate('{{nope}}', {}, 'gw/dnsmasq.conf')).toThrow('fixture gw/dnsmasq.conf: no value for {{nope}}');
  });
});

describe('the lab lock', () => {
  it('refuses a second holder while the first lives, and names it', async () => {
    const file = path.join(temp('lab-lock-'), 'lock');
    const lock = await acquireLock(file, 'up');
    await expect(acquireLock(file, 'restore')).rejects.toThrow(/this lab is busy: 'lab up' \(pid \d+\)/);
    lock.release();
    (await acquireLock(file, 'restore')).release();
  });

  it('takes over the lock of a process that died', async () => {
    const file = path.join(temp('lab-lock-'), 'lock');
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    writeFileSync(file, JSON.stringify({ pid: child.pid, startTime, command: 'up', since: 'then' }));
    await expect(acquireLock(file, 'up')).rejects.toThrow(/busy/);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    (await acquireLock(file, 'up')).release();
  });

  it('waits for the holder when asked to', async () => {
    const file = path.join(temp('lab-lock-'), 'lock');
    const first = await acquireLock(file, 'up');
    setTimeout(() => first.release(), 300);
    const started = Date.now();
    (await acquireLock(file, 'up', { waitMs: 10_000 })).release();
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });
});

describe('the CLI without root', () => {
  it('exits 2 on an unknown command or option, with the valid ones', () => {
    const lab = (args: string[]) => {
      try {
        execFileSync(process.execPath, ['bin/lab.js', ...args], { encoding: 'utf8', stdio: 'pipe' });
        return { status: 0, stderr: '' };
      } catch (error) {
        const e = error as { status: number; stderr: string };
        return { status: e.status, stderr: e.stderr };
      }
    };
    expect(lab(['stauts'])).toMatchObject({ status: 2, stderr: expect.stringContaining("did you mean 'status'") });
    expect(lab(['up', '--frobnicate'])).toMatchObject({ status: 2, stderr: expect.stringContaining('--frobnicate') });
    expect(lab(['up', 'nosuch'])).toMatchObject({ status: 2, stderr: expect.stringContaining("unknown machine 'nosuch'") });
    expect(lab(['up', '--from', 'proxi'])).toMatchObject({ status: 2, stderr: expect.stringContaining("did you mean 'proxy'") });
  }, 30_000); // five starts of the CLI: seconds on a busy machine
});
