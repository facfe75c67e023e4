import { execa } from 'execa';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectLabTestPasses, hostTraces, lab, labOk, repoRoot, STATE_ROOT, uniqueName } from './helpers.js';

const name = uniqueName('e2e');
const exec = (machine: string, ...argv: string[]) => labOk(['exec', '--name', name, machine, '--', ...argv]);

interface Status {
  machines: { name: string; state: string; address: string; stagesDone: string[]; stagesPending: string[] }[];
}

describe('lab up: the default lab, for real, in sandbox mode', () => {
  let status: Status;
  const address = (machine: string) => status.machines.find((m) => m.name === machine)!.address;

  beforeAll(async () => {
    await labOk(['up', '--name', name]);
    status = JSON.parse(await labOk(['status', '--name', name, '--json'])) as Status;
  });

  afterAll(async () => {
    await lab(['destroy', '--name', name]); // also when a test failed
  });

  it('runs three machines with every stage done', () => {
    expect(status.machines.map((m) => [m.name, m.state])).toEqual([
      ['gw', 'running'],
      ['web-silicon', 'running'],
      ['web', 'running'],
    ]);
    expect(status.machines.map((m) => m.stagesDone.join(','))).toEqual(['system,dns', 'system,nginx,site', 'system,haproxy,proxy']);
    expect(address('gw')).toBe('10.224.0.254');
    for (const machine of ['web', 'web-silicon']) expect(address(machine)).toMatch(/^10\.224\.0\.\d+$/);
  });

  it('resolves every machine by name through gw', async () => {
    for (const from of ['gw', 'web', 'web-silicon']) {
      for (const to of ['gw', 'web', 'web-silicon']) {
        const answer = await exec(from, 'getent', 'hosts', `${to}.prolo`);
        expect(answer.split(/\s+/)[0], `${from} resolving ${to}`).toBe(address(to));
      }
    }
    expect((await exec('web-silicon', 'getent', 'hosts', 'silicon.prolo')).split(/\s+/)[0]).toBe(address('web'));
  });

  it("routes https://silicon.prolo/ by SNI through web's haproxy to web-silicon", async () => {
    const page = await exec('gw', 'curl', '-sSk', '-w', '\\n%{remote_ip}', 'https://silicon.prolo/');
    expect(page).toContain('<h1>silicon.prolo</h1>');
    expect(page).toContain(`Served by web-silicon of lab ${name}.`);
    expect(page.trim().split('\n').at(-1)).toBe(address('web')); // the connection went to the proxy, not to web-silicon
  });

  it('answers http://silicon.prolo/ with 301 to https', async () => {
    const reply = await exec('gw', 'curl', '-sS', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', 'http://silicon.prolo/');
    expect(reply).toBe('301 https://silicon.prolo/');
  });

  it('has dnsmasq, haproxy and nginx active', async () => {
    expect((await exec('gw', 'systemctl', 'is-active', 'dnsmasq')).trim()).toBe('active');
    expect((await exec('web', 'systemctl', 'is-active', 'haproxy')).trim()).toBe('active');
    expect((await exec('web-silicon', 'systemctl', 'is-active', 'nginx')).trim()).toBe('active');
  });

  it('reaches the simulated internet, seen there with the uplink address (NAT)', async () => {
    expect((await exec('web', 'curl', '-sS', 'http://198.51.100.1/')).trim()).toBe('198.51.100.2');
  });

  it('opens a shell in a machine that reads its input and ends with its exit code', async () => {
    const shell = await execa(process.execPath, [path.join(repoRoot, 'bin', 'lab.js'), 'shell', '--name', name, 'web-silicon'], {
      input: 'hostname\ncat /etc/hostname\nexit 5\n',
      reject: false,
    });
    expect(shell.exitCode).toBe(5);
    expect(shell.stdout).toContain('web-silicon\nweb-silicon');
  });

  it('passes exit codes through lab exec', async () => {
    const result = await lab(['exec', '--name', name, 'web', '--', 'sh', '-c', 'exit 7']);
    expect(result.exitCode).toBe(7);
  });

  it('keeps one read-only snapshot per stage', async () => {
    const snapshots = path.join(STATE_ROOT, name, 'pool', 'snapshots');
    const found: string[] = [];
    for (const machine of readdirSync(snapshots)) {
      for (const snapshot of readdirSync(path.join(snapshots, machine)).filter((s) => !s.endsWith('.json'))) {
        const ro = await execa('btrfs', ['property', 'get', '-ts', path.join(snapshots, machine, snapshot), 'ro']);
        expect(ro.stdout.trim(), snapshot).toBe('ro=true');
        found.push(`${machine}/${snapshot.split('@')[0]}`);
      }
    }
    expect(found.sort()).toEqual(
      ['gw/system', 'gw/dns', 'web-silicon/system', 'web-silicon/nginx', 'web-silicon/site', 'web/system', 'web/haproxy', 'web/proxy'].sort(),
    );
  });

  it('does nothing more when run again with everything cached and running', async () => {
    const report = JSON.parse(await labOk(['up', '--name', name, '--json'])) as { machines: { booted: boolean; stages: { action: string }[] }[] };
    expect(report.machines.every((m) => !m.booted && m.stages.every((s) => s.action === 'cached'))).toBe(true);
  });

  it('passes the default scenarios with lab test, reports included', async () => {
    await expectLabTestPasses(['--name', name], mkdtempSync(path.join(tmpdir(), 'lab-reports-')));
    // The restore scenario put web back with its own lab up: the lab is as it was, nothing to redo.
    const report = JSON.parse(await labOk(['up', '--name', name, '--json'])) as { machines: { booted: boolean; stages: { action: string }[] }[] };
    expect(report.machines.map((m) => m.booted)).toEqual([false, false, false]);
    expect(report.machines.flatMap((m) => m.stages.map((s) => s.action))).not.toContain('build');
  });

  it('leaves nothing on the host after lab destroy', async () => {
    expect(hostTraces(name).length).toBeGreaterThan(0); // the check below can see a lab
    await labOk(['destroy', '--name', name]);
    expect(hostTraces(name)).toEqual([]);
  });
});
