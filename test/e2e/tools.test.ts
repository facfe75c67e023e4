import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hostTraces, lab, labOk, repoRoot, STATE_ROOT, uniqueName } from './helpers.js';

/** Stages written for Puppet and Ansible, the idempotence check, and published ports. */
const made: string[] = [];
afterAll(async () => {
  for (const config of made) await lab(['--config', config, 'destroy']);
});

/** A one-machine lab whose stages are files of any kind: name -> [extension, content]. */
function toolLab(stages: [string, string, string][]): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'lab-tools-'));
  mkdirSync(path.join(dir, 'stages', 'solo'), { recursive: true });
  for (const [stage, extension, content] of stages) writeFileSync(path.join(dir, 'stages', 'solo', `${stage}${extension}`), content);
  const config = path.join(dir, 'lab.config.yaml');
  const name = uniqueName('tool');
  writeFileSync(config, [`name: ${name}`, 'stagesDir: stages', 'zone: { dnsMachine: null }', 'machines:', '  - name: solo', '    address: 10.224.0.9', `    stages: [${stages.map((s) => s[0]).join(', ')}]`, ''].join('\n'));
  made.push(config);
  return config;
}

const manifest = `# Seed 000's first Puppet manifest, applied in the machine.
file { '/puppet-test':
  content => "Hello. Hallo.\\n",
}
service { 'systemd-networkd':
  ensure => running,
  enable => true,
}
`;

const playbook = `# lab: packages=cron
- hosts: all
  tasks:
    - name: a file, as the playbook says
      ansible.builtin.copy:
        dest: /ansible-test
        content: "Hello from {{ lab_machine }}\\n"
    - name: cron runs
      ansible.builtin.service:
        name: cron
        state: started
        enabled: true
`;

describe('Puppet and Ansible stages', () => {
  it('applies a .pp and a .yml stage in the machine, and both are idempotent', async () => {
    const config = toolLab([
      ['puppet', '.pp', manifest],
      ['ansible', '.yml', playbook],
    ]);
    const report = JSON.parse(await labOk(['--config', config, 'up', '--json'])) as { machines: { stages: { name: string; action: string }[] }[] };
    expect(report.machines[0]!.stages.map((s) => `${s.name}:${s.action}`)).toEqual(['system:build', 'puppet:build', 'ansible:build']);
    const exec = (...argv: string[]) => labOk(['--config', config, 'exec', 'solo', '--', ...argv]);
    expect(await exec('cat', '/puppet-test')).toBe('Hello. Hallo.\n');
    expect(await exec('cat', '/ansible-test')).toBe('Hello from solo\n');
    expect((await exec('systemctl', 'is-enabled', 'cron')).trim()).toBe('enabled');
    const idempotence = JSON.parse(await labOk(['--config', config, 'up', '--idempotence', '--json'])) as { idempotent: boolean; machines: { stages: { stage: string; changes: string[] }[] }[] };
    expect(idempotence.machines[0]!.stages.map((s) => `${s.stage}:${s.changes.join(',') || 'unchanged'}`)).toEqual(['system:unchanged', 'puppet:unchanged', 'ansible:unchanged']);
    expect(idempotence.idempotent).toBe(true);
  });

  it('fails the stage when a resource or a task fails, with the tool output in its log', async () => {
    const puppet = toolLab([['broken', '.pp', "exec { 'doomed': command => '/bin/false' }\n"]]);
    const failed = await lab(['--config', puppet, 'up']);
    expect(failed.exitCode).toBe(1);
    expect(failed.stderr).toContain('stage solo@broken failed');
    expect(failed.stderr).toMatch(/puppet exited [46]: the stage failed/);
    const ansible = toolLab([['broken', '.yml', '- hosts: all\n  tasks:\n    - ansible.builtin.command: /bin/false\n']]);
    const failedToo = await lab(['--config', ansible, 'up']);
    expect(failedToo.exitCode).toBe(1);
    expect(failedToo.stderr).toMatch(/ansible exited 2: the stage failed/);
  });

  it('refuses a tool stage on a tarball image, saying what to do, before the host is touched', async () => {
    const config = toolLab([['puppet', '.pp', manifest]]);
    writeFileSync(config, `image: { source: tarball, tarball: /nonexistent.tar }\n${readFileSync(config, 'utf8')}`);
    const result = await lab(['--config', config, 'up']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('lab cannot tell whether a tarball image can install puppet');
  });
});

describe('the idempotence check', () => {
  it('flags a stage that appends to a file, with the path', async () => {
    const config = toolLab([
      ['append', '.sh', '#!/bin/sh\necho line >> /etc/appended\n'],
      ['steady', '.sh', '#!/bin/sh\necho line > /etc/steady\n'],
    ]);
    await labOk(['--config', config, 'up']);
    const result = await lab(['--config', config, 'up', '--idempotence']);
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/solo\s+append\s+changed 1 path\(s\)/);
    expect(result.stdout).toMatch(/solo\s+steady\s+nothing changed/);
    expect(result.stdout).toContain('content of /etc/appended');
    expect(result.stdout).toContain('NOT idempotent');
    // The machine is back at its last stage, running: one line appended, not two.
    expect(await labOk(['--config', config, 'exec', 'solo', '--', 'cat', '/etc/appended'])).toBe('line\n');
  });

  it('reports an online stage that fails when applied again in its table, and puts the machine back running', async () => {
    const config = toolLab([['once', '.sh', '#!/bin/sh\n# lab: online\nset -e\ntest ! -e /etc/once\ntouch /etc/once\n']]);
    await labOk(['--config', config, 'up']);
    const result = await lab(['--config', config, 'up', '--idempotence']);
    expect(result.exitCode, result.stderr).toBe(1);
    expect(result.stdout).toMatch(/solo\s+once\s+FAILED when applied again/);
    expect(result.stdout).toContain('NOT idempotent');
    expect(result.stderr).not.toContain('is currently busy');
    const status = JSON.parse(await labOk(['--config', config, 'status', '--json'])) as { machines: { name: string; state: string; rootStage?: string; pid?: number }[] };
    expect(status.machines.map((m) => `${m.name}:${m.state}:${m.rootStage}`)).toEqual(['solo:running:once']);
    // One machine process, the one the state knows: no nspawn of the copy left behind.
    const name = /^name: (\S+)$/m.exec(readFileSync(config, 'utf8'))![1]!;
    const nspawns = readdirSync('/proc').filter((pid) => {
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        return argv[0] === 'systemd-nspawn' && argv.includes(`--directory=${path.join(STATE_ROOT, name, 'pool', 'machines', 'solo')}`);
      } catch {
        return false;
      }
    });
    expect(nspawns.map(Number)).toEqual([status.machines[0]!.pid]);
  });

  it('passes on the default lab', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-idem-'));
    const config = path.join(dir, 'lab.config.json');
    writeFileSync(config, JSON.stringify({ name: uniqueName('idem') }));
    made.push(config);
    const report = JSON.parse(await labOk(['--config', config, 'up', '--idempotence', '--json'])) as { idempotent: boolean; machines: { machine: string; stages: { stage: string; changed: boolean }[] }[] };
    expect(report.machines.flatMap((m) => m.stages.filter((s) => s.changed).map((s) => `${m.machine}@${s.stage}`))).toEqual([]);
    expect(report.idempotent).toBe(true);
    await labOk(['--config', config, 'test', 'proxy', '--reports', path.join(dir, 'reports')]); // and the lab still works
    await labOk(['--config', config, 'destroy']);
    expect(hostTraces(JSON.parse(readFileSync(config, 'utf8')).name)).toEqual([]);
  });
});

describe('published ports', () => {
  it("reach web's proxy from the simulated internet through the lab's uplink address", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-ports-'));
    const config = path.join(dir, 'lab.config.json');
    const machines = [
      { name: 'gw', address: '10.224.0.254', stages: ['dns'] },
      { name: 'web-silicon', stages: ['nginx', 'site'] },
      { name: 'web', address: '10.224.0.10', dependsOn: ['web-silicon'], stages: ['haproxy', 'proxy'], publish: [{ port: 80 }, { port: 443 }] },
    ];
    writeFileSync(config, JSON.stringify({ name: uniqueName('port'), machines }));
    made.push(config);
    const scenarios = path.join(dir, 'scenarios');
    mkdirSync(scenarios);
    writeFileSync(
      path.join(scenarios, 'published.test.ts'),
      `import { expect, it } from 'vitest';
import { useLab } from '${path.join(repoRoot, 'dist', 'lib', 'scenario', 'index.js')}';
const lab = await useLab();
const outside = lab.publishedAddress!;
it('serves https://silicon.prolo/ to the outside, through the published port, the SNI proxy and the backend', async () => {
  const reply = await lab.fromInternet(['curl', '-sS', '-k', '--max-time', '10', '--resolve', \`silicon.prolo:443:\${outside}\`, '-w', 'HTTP-STATUS %{http_code}', 'https://silicon.prolo/']);
  expect(reply.exitCode, reply.stderr).toBe(0);
  expect(reply.stdout).toContain('<h1>silicon.prolo</h1>');
  expect(reply.stdout).toContain('HTTP-STATUS 200');
});
it('answers port 80 with a redirect to https', async () => {
  const reply = await lab.fromInternet(['curl', '-sS', '--max-time', '10', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', '-H', 'Host: silicon.prolo', \`http://\${outside}/\`]);
  expect(reply.stdout).toBe('301 https://silicon.prolo/');
});
`,
    );
    const result = await lab(['--config', config, 'test', '--scenarios', scenarios, '--reports', path.join(dir, 'reports')]);
    expect(result.exitCode, `${result.stdout}\n${result.stderr}`).toBe(0);
  });

  it('refuses a host port published twice, or by a machine without a static address on a NATed network (exit 2)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-ports-'));
    const config = path.join(dir, 'lab.config.json');
    const twice = [
      { name: 'gw', address: '10.224.0.254', stages: ['dns'] },
      { name: 'a', address: '10.224.0.10', publish: [{ port: 80 }] },
      { name: 'b', address: '10.224.0.11', publish: [{ port: 8080, hostPort: 80 }] },
    ];
    writeFileSync(config, JSON.stringify({ name: uniqueName('port'), machines: twice }));
    const result = await lab(['--config', config, 'up']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain("machines.2.publish.0: host port tcp/80 is already published by 'a'");
    writeFileSync(config, JSON.stringify({ name: uniqueName('port'), machines: [twice[0], { name: 'a', publish: [{ port: 80 }] }] }));
    const dhcp = await lab(['--config', config, 'up']);
    expect(dhcp.exitCode).toBe(2);
    expect(dhcp.stderr).toContain("machines.1.publish: 'a' needs a static address on a NAT'ed network to publish a port");
  });
});
