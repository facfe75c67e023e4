import { execa } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnDetached } from '../../lib/exec.js';
import { FAST, NORMAL, poll } from '../../lib/wait.js';
import { stopNspawn } from '../../lib/runtime/nspawn-process.js';
import { childrenOf, isAlive, refOf } from '../../lib/state/process.js';
import type { ProcessRef } from '../../lib/state/state.js';
import { expectDefaultScenariosPassed, lab, labOk, latestReport, repoRoot, STATE_ROOT, uniqueName } from './helpers.js';

/**
 * The seeds' path, for real: a "systemd host" container (systemd as PID 1, machined, networkd)
 * booted by this test in network namespaces of its own, and the default lab run inside it with
 * the machinectl runtime and networkd-managed NAT.
 */
const name = uniqueName('sdh');
const dir = mkdtempSync(path.join(tmpdir(), 'lab-sdh-'));
const outerConfig = path.join(dir, 'lab.config.yaml');
const internetNs = `lab-${name}-inet`;
const readyFile = path.join(dir, 'echo.ready');
const hostRoot = path.join(STATE_ROOT, name, 'pool', 'systemd-host');
const innerState = path.join(STATE_ROOT, name, 'pool', 'inner-state');
let systemdHost: ProcessRef | undefined;
let echoServer: ProcessRef | undefined;
let leader = 0;

/** Runs a command inside the systemd host as a unit of its own systemd (as a user's shell would be: in its cgroup tree). */
function inHost(argv: string[], options: { reject?: boolean } = {}) {
  return execa('nsenter', [`--target=${leader}`, '--all', '--', 'systemd-run', '--quiet', '--pipe', '--wait', '--collect', '--', ...argv], {
    reject: options.reject ?? true,
    timeout: 10 * 60_000,
  });
}
const innerLab = (...args: string[]) => inHost([process.execPath, path.join(repoRoot, 'bin', 'lab.js'), '--config', '/root/inner.yaml', ...args], { reject: false });

describe('the machinectl runtime inside a systemd host', () => {
  beforeAll(async () => {
    writeFileSync(
      outerConfig,
      [`name: ${name}`, `stagesDir: ${path.join(repoRoot, 'test', 'systemd-host', 'stages')}`, 'zone: { dnsMachine: null }', 'machines:', '  - { name: sdhost, address: 10.224.0.9, stages: [systemd-host] }', ''].join('\n'),
    );
    await labOk(['--config', outerConfig, 'up', '--until', 'sdhost@systemd-host']);
    await labOk(['--config', outerConfig, 'down']);
    const tarball = path.join(dir, 'systemd-host.tar');
    await labOk(['--config', outerConfig, 'image', 'export', tarball, '--from', 'sdhost@systemd-host']);
    // The host's root and the inner lab's state live in the outer lab's btrfs pool: lab destroy takes them along.
    mkdirSync(hostRoot, { recursive: true });
    mkdirSync(innerState, { recursive: true });
    await execa('tar', ['-xpf', tarball, '--numeric-owner', '--xattrs', '-C', hostRoot]);
    writeFileSync(path.join(hostRoot, 'etc', 'hostname'), 'sdhost\n');
    writeFileSync(path.join(hostRoot, 'etc', 'machine-id'), '');
    writeFileSync(
      path.join(hostRoot, 'root', 'inner.yaml'),
      ['name: inner', 'network:', '  mode: host', '  internet: { address: 198.51.100.1, uplinkAddress: 198.51.100.2 }', ''].join('\n'),
    );

    // The simulated internet: a namespace of the test's own, with the lab's echo server.
    await execa('ip', ['netns', 'add', internetNs]);
    await execa('ip', ['-n', internetNs, 'link', 'set', 'lo', 'up']);
    const nsenter = ['nsenter', `--net=/run/netns/${internetNs}`, '--'];
    systemdHost = refOf(
      spawnDetached(
        [
          ...nsenter, 'systemd-nspawn', '--quiet', `--directory=${hostRoot}`, '--machine=sdhost', '--register=no', '--keep-unit', '--boot',
          '--capability=all', '--network-veth', '--resolv-conf=off', '--console=read-only',
          '--bind=/var/cache/lab', `--bind=${innerState}:/var/lib/lab`, `--bind-ro=${process.execPath}`, `--bind=${repoRoot}`,
        ],
        path.join(dir, 'systemd-host.log'),
      ),
    );
    await poll('the systemd host to start', async () => (await execa('ip', ['-n', internetNs, 'link', 'show', 've-sdhost'], { reject: false })).exitCode === 0, { within: 60_000, every: NORMAL });
    await execa('ip', ['-n', internetNs, 'address', 'add', '198.51.100.1/24', 'dev', 've-sdhost']);
    await execa('ip', ['-n', internetNs, 'link', 'set', 've-sdhost', 'up']);
    echoServer = refOf(spawnDetached([...nsenter, process.execPath, path.join(repoRoot, 'dist', 'lib', 'network', 'wan-echo.js'), '198.51.100.1', '80', readyFile], path.join(dir, 'echo.log')));
    await poll('the echo server', () => existsSync(readyFile), { within: 10_000, every: FAST });
    // Its PID 1: the child of nspawn in a PID namespace of its own.
    leader = await poll('the systemd host PID 1', () => childrenOf(systemdHost!.pid).find((child) => pidNamespace(child) !== pidNamespace(systemdHost!.pid)), { within: 60_000, every: FAST });
    await poll('the systemd host to boot', async () => /running|degraded/.test((await execa('nsenter', [`--target=${leader}`, '--all', '--', 'systemctl', 'is-system-running', '--wait'], { reject: false })).stdout), {
      within: 120_000,
      every: NORMAL,
    });
  });

  afterAll(async () => {
    if (leader) await innerLab('destroy');
    if (systemdHost) await stopNspawn(systemdHost, { hard: false });
    if (isAlive(echoServer)) process.kill(echoServer.pid, 'SIGTERM');
    await execa('ip', ['netns', 'delete', internetNs], { reject: false });
    await lab(['--config', outerConfig, 'destroy']);
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs machined, and lab chooses the machinectl runtime there, with networkd managing the zone', async () => {
    const doctor = await innerLab('doctor');
    expect(doctor.stdout).toContain('runtime: machinectl (machined, systemd-nspawn@ units)');
    expect(doctor.stdout).toContain('systemd as PID 1: yes, machined: running, networkd: running');
    expect(doctor.stdout).toContain('network: host, managed by systemd-networkd');
  });

  it('passes the default scenarios there', async () => {
    const run = await innerLab('test', '--reports', '/root/reports');
    expect(run.exitCode, `${run.stdout}\n${run.stderr}`).toBe(0);
    // NAT included (nothing skipped): the machines reach the test's internet through networkd's masquerade.
    expectDefaultScenariosPassed(latestReport(path.join(hostRoot, 'root', 'reports')));
  });

  it('shows the machines in machinectl list, with .nspawn files written by lab', async () => {
    const list = await inHost(['machinectl', 'list', '--no-legend']);
    for (const machine of ['gw', 'web', 'web-silicon']) expect(list.stdout).toMatch(new RegExp(`^inner-${machine}\\s+container\\s+systemd-nspawn`, 'm'));
    expect(readFileSync(path.join(hostRoot, 'etc', 'systemd', 'nspawn', 'inner-gw.nspawn'), 'utf8')).toContain('Bridge=vz-prolo');
    const nat = await inHost(['nft', 'list', 'table', 'ip', 'io.systemd.nat']);
    expect(nat.stdout).toContain('masquerade');
  });

  it('leaves nothing of the inner lab after lab destroy', async () => {
    expect((await innerLab('destroy')).exitCode).toBe(0);
    expect((await inHost(['machinectl', 'list', '--no-legend'])).stdout.trim()).toBe('');
    expect(existsSync(path.join(hostRoot, 'etc', 'systemd', 'nspawn', 'inner-gw.nspawn'))).toBe(false);
    expect((await inHost(['ip', 'link', 'show', 'vz-prolo'], { reject: false })).exitCode).not.toBe(0);
    expect((await innerLab('doctor')).stdout).toContain("on the host, this lab's (lab destroy removes it all): nothing");
  });
});

function pidNamespace(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return undefined;
  }
}
