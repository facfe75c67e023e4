import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultLab } from '../../lib/config/default.js';
import { validateConfig } from '../../lib/config/validate.js';
import { assertUsable, openLab } from '../../lib/engine/lab.js';
import { byAge } from '../../lib/engine/snapshots.js';
import { CommandError, run, type RunResult } from '../../lib/exec.js';
import { parseDeb822Sources, parseOneLineSources } from '../../lib/image/apt-sources.js';
import { createImage } from '../../lib/image/create.js';
import { chooseMirror, type HostDistribution, parseOsRelease } from '../../lib/image/mirror.js';
import { apt, detectPackageManager, pacman } from '../../lib/image/packages.js';
import { AssertionFailure } from '../../lib/errors.js';
import { Machine } from '../../lib/machine-verbs.js';
import { bindOptions, stopNspawn } from '../../lib/runtime/nspawn-process.js';
import { awaitBoot } from '../../lib/runtime/runtime.js';

const config = (overrides: object) => validateConfig({ ...defaultLab, ...overrides });

const DEBIAN_HOST: HostDistribution = {
  ...parseOsRelease('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'),
  aptSources: parseDeb822Sources(
    'Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n',
  ),
};
const UBUNTU_HOST: HostDistribution = {
  ...parseOsRelease('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n'),
  aptSources: parseOneLineSources('deb http://azure.archive.ubuntu.com/ubuntu/ noble main universe\ndeb http://security.ubuntu.com/ubuntu noble-security main\n'),
};
const ARCH_HOST: HostDistribution = { ...parseOsRelease('NAME="Arch Linux"\nID=arch\n'), aptSources: [] };

describe('the mirror an image is built from', () => {
  it("uses the host's mirror only for the host's own distribution", () => {
    expect(chooseMirror('debian', undefined, DEBIAN_HOST).mirror).toBe('http://mirror.example/debian');
    expect(chooseMirror('ubuntu', undefined, UBUNTU_HOST).mirror).toBe('http://azure.archive.ubuntu.com/ubuntu');
  });

  it("uses the distribution's default mirror on a host of another distribution, and says why", () => {
    // The nightly's case: a Debian bookworm image on an Ubuntu runner.
    const onUbuntu = chooseMirror('debian', undefined, UBUNTU_HOST);
    expect(onUbuntu.mirror).toBe('http://deb.debian.org/debian');
    expect(onUbuntu.why).toContain('the host runs ubuntu');
    expect(chooseMirror('ubuntu', undefined, DEBIAN_HOST).mirror).toBe('http://archive.ubuntu.com/ubuntu');
    expect(chooseMirror('debian', undefined, ARCH_HOST).mirror).toBe('http://deb.debian.org/debian');
    expect(chooseMirror('ubuntu', undefined, ARCH_HOST).mirror).toBe('http://archive.ubuntu.com/ubuntu');
  });

  it('takes the configured mirror over everything', () => {
    expect(chooseMirror('debian', 'http://local/debian', UBUNTU_HOST)).toEqual({ mirror: 'http://local/debian', why: 'image.mirror in the config' });
  });

  it('keys the image by its mirror, so an image from another mirror is another image', () => {
    const onDebian = createImage(config({}), DEBIAN_HOST);
    const onUbuntu = createImage(config({}), UBUNTU_HOST);
    expect(onDebian.key).not.toBe(onUbuntu.key);
    expect(onUbuntu.describe()).toContain('from http://deb.debian.org/debian');
  });

  it("has lab up show debootstrap's phases, not its line per package (the image log keeps both)", () => {
    const image = createImage(config({}), DEBIAN_HOST);
    const details = ['I: Retrieving libc6 2.36-9', 'I: Validating libc6 2.36-9', 'I: Extracting base-files...', 'I: Unpacking dbus...', 'I: Configuring dbus...'];
    const phases = ['I: Unpacking the base system...', 'I: Configuring the base system...', 'I: Base system installed successfully.', 'importing the base image from /var/cache/lab/x.tar'];
    expect(details.filter((line) => !image.isDetail?.(line))).toEqual([]);
    expect(phases.filter((line) => image.isDetail?.(line))).toEqual([]);
  });
});

describe('package managers', () => {
  it("installs with the image's own package manager", () => {
    expect(createImage(config({}), DEBIAN_HOST).packageManager('/nonexistent')).toBe(apt);
    expect(createImage(config({ image: { source: 'pacstrap', distribution: 'arch' } })).packageManager('/nonexistent')).toBe(pacman);
    expect(pacman.install(['nginx', 'curl'])).toEqual(['pacman', '-S', '--noconfirm', '--needed', 'nginx', 'curl']);
    expect(pacman.refresh()).toEqual(['pacman', '-Syu', '--noconfirm']);
    expect(pacman.cacheDir).toBe('/var/cache/pacman/pkg');
    expect(apt.install(['nginx'])).toEqual(['apt-get', 'install', '-y', '-q', '-o', 'Dpkg::Options::=--force-confold', 'nginx']);
    expect(apt.configFiles.map((f) => f.path)).toEqual(['/etc/apt/apt.conf.d/90lab', '/etc/dpkg/dpkg.cfg.d/90lab']);
    // apt downloads into the shared cache under its lock, then installs from it without.
    expect(apt.split!.download(['nginx'])).toEqual(['apt-get', 'install', '--download-only', '-y', '-q', 'nginx']);
    expect(apt.split!.installDownloaded(['nginx'])).toEqual(['apt-get', 'install', '--no-download', '-y', '-q', '-o', 'Debug::NoLocking=true', '-o', 'Dpkg::Options::=--force-confold', 'nginx']);
    expect(pacman.split).toBeUndefined();
  });

  it("finds a tarball image's package manager in its root", () => {
    const root = mkdtempSync(path.join(tmpdir(), 'lab-root-'));
    expect(detectPackageManager(root)).toBeUndefined();
    mkdirSync(path.join(root, 'usr/bin'), { recursive: true });
    writeFileSync(path.join(root, 'usr/bin/pacman'), '');
    expect(detectPackageManager(root)).toBe(pacman);
    writeFileSync(path.join(root, 'usr/bin/apt-get'), '');
    expect(detectPackageManager(root)).toBe(apt);
  });
});

describe('opening a lab is pure', () => {
  it('opens with a missing tarball and no tools on PATH; the commands that need them refuse', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-open-'));
    const file = path.join(dir, 'lab.config.yaml');
    writeFileSync(file, `name: pure\nstateDir: ${dir}/state\nimage: { source: tarball, tarball: ./missing.tar }\n`);
    const saved = process.env.PATH;
    process.env.PATH = path.join(dir, 'empty');
    try {
      const lab = await openLab({ file });
      expect(lab.image.source).toBe('tarball');
      await expect(assertUsable(lab, 'up', { image: true })).rejects.toThrow('missing.tar does not exist');
      // restore needs no image: it gets as far as the host checks.
      await expect(assertUsable(lab, 'restore', { image: false })).rejects.toThrow(/must run as root|missing host tools/);
    } finally {
      process.env.PATH = saved;
    }
  });
});

describe('waiting for a boot', () => {
  const answering = (state: string, asked: string[]) => async (argv: readonly string[]): Promise<RunResult> => {
    asked.push(argv.slice(0, 2).join(' '));
    const stdout = argv[1] === 'is-system-running' ? `${state}\n` : 'nginx.service loaded failed failed nginx\n';
    return { argv, exitCode: 0, stdout, stderr: '', durationMs: 1 };
  };
  const alive = () => undefined;

  it("asks for failed units only when systemd says 'degraded': 'running' means there are none", async () => {
    const asked: string[] = [];
    expect((await awaitBoot('web', answering('running', asked), alive, 5000, () => '')).failedUnits).toEqual([]);
    expect(asked).toEqual(['systemctl is-system-running']);
    asked.length = 0;
    expect((await awaitBoot('web', answering('degraded', asked), alive, 5000, () => '')).failedUnits).toEqual(['nginx.service']);
    expect(asked).toEqual(['systemctl is-system-running', 'systemctl list-units']);
  });
});

describe('stopping a machine', () => {
  it('gives up on a process that outlives SIGKILL, naming it, instead of waiting forever', async () => {
    const signals: string[] = [];
    const immortal = { isAlive: () => true, kill: (_pid: number, signal: string) => void signals.push(signal), leader: () => 4242 };
    const started = Date.now();
    await expect(stopNspawn({ pid: 4241, startTime: '1' }, { hard: false }, { orderlyMs: 50, killMs: 50 }, immortal)).rejects.toThrow(
      /process 4241 \(systemd-nspawn\) did not end within 0.1 s of SIGKILL/,
    );
    expect(Date.now() - started).toBeLessThan(5000);
    expect(signals).toEqual(['SIGTERM', 'SIGKILL', 'SIGKILL']);
  });
});

describe('scenario verbs', () => {
  const timedOut = (argv: readonly string[]): never => {
    const result: RunResult = { argv, exitCode: -1, stdout: 'partial', stderr: '', durationMs: 10 };
    throw new CommandError(result, 'timed out after 10 ms', true);
  };

  it('report a command that times out as an assertion failure, not a broken lab', async () => {
    const machine = new Machine('gw', async (argv) => timedOut(argv));
    await expect(machine.succeed('sleep 100', { timeout: 10 })).rejects.toBeInstanceOf(AssertionFailure);
    await expect(machine.succeed('sleep 100', { timeout: 10 })).rejects.toThrow(/should have succeeded but timed out after 10 ms/);
    await expect(machine.fail('sleep 100', { timeout: 10 })).rejects.toBeInstanceOf(AssertionFailure);
  });

  it('retry a try that timed out in waitUntilSucceeds, until one succeeds', async () => {
    let tries = 0;
    const machine = new Machine('gw', async (argv) => {
      if (++tries < 3) return timedOut(argv);
      return { argv, exitCode: 0, stdout: 'ok\n', stderr: '', durationMs: 1 };
    });
    expect(await machine.waitUntilSucceeds('true', 10_000)).toBe('ok\n');
    expect(tries).toBe(3);
  });
});

describe('snapshots', () => {
  it('sorts a snapshot whose metadata is missing as the oldest, never the newest', () => {
    const sorted = [{ createdAt: '2026-11-02T00:00:00Z', key: 'b' }, { key: 'lost' }, { createdAt: '2026-11-01T00:00:00Z', key: 'a' }].sort(byAge);
    expect(sorted.map((s) => s.key)).toEqual(['lost', 'a', 'b']);
  });
});

describe('run', () => {
  it('hands out output line by line while the command runs, and logs it as it comes', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-run-'));
    const logFile = path.join(dir, 'log');
    const lines: string[] = [];
    await run(['sh', '-c', 'echo "I: Retrieving"; echo "I: Extracting" >&2; printf "I: done"'], { onLine: (line) => lines.push(line), logFile });
    expect(lines.sort()).toEqual(['I: Extracting', 'I: Retrieving', 'I: done']);
    const { readFileSync } = await import('node:fs');
    const log = readFileSync(logFile, 'utf8');
    for (const line of ['I: Retrieving', 'I: Extracting', 'I: done', '[exit 0']) expect(log).toContain(line);
  });
});

describe("nspawn's binds", () => {
  it('are never recursive, read-only ones with --bind-ro, colons and backslashes in paths escaped', () => {
    expect(bindOptions([{ source: '/repo', target: '/root/sadm', readonly: true }, { source: '/repo/a:b\\c', target: '/srv/x:y' }])).toEqual([
      '--bind-ro=/repo:/root/sadm:norbind',
      '--bind=/repo/a\\:b\\\\c:/srv/x\\:y:norbind',
    ]);
  });
});
