/**
 * examples/sadm-ansible, SADM's way: lab makes the machines, then the team's playbooks run from the
 * controller (the lab's namespace) over SSH, play by play, with a snapshot of every machine after
 * each. Run on a copy of the example, so that a role can be edited and broken.
 */
import { appendFileSync, cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { hostTraces, lab, labOk, latestReport, repoRoot, STATE_ROOT, uniqueName } from './helpers.js';

const name = uniqueName('sans');
const dir = mkdtempSync(path.join(tmpdir(), 'lab-sadm-ansible-'));
cpSync(path.join(repoRoot, 'examples', 'sadm-ansible'), dir, { recursive: true });
const args = ['--config', path.join(dir, 'lab.config.yaml'), '--name', name];
const state = path.join(STATE_ROOT, name);
const MACHINES = ['gw', 'r00p01', 'rhfs', 'web'];

interface UpJson {
  controller: { name: string; action: 'cached' | 'build'; recap: { host: string; changed: number }[] }[];
}
const up = async (extra: string[] = []) => JSON.parse(await labOk([...args, 'up', '--json', ...extra])) as UpJson;
const ran = (report: UpJson) => report.controller.filter((s) => s.action === 'build').map((s) => s.name);
const cached = (report: UpJson) => report.controller.filter((s) => s.action === 'cached').map((s) => s.name);
const exec = async (machine: string, argv: string[]) => (await labOk([...args, 'exec', machine, '--', ...argv])).trimEnd();
/** SSH from the controller's side (the lab's namespace), with lab's own SSH config: its key, ProxyJump, strict host keys. */
const ssh = (machine: string, command: string) =>
  execa('nsenter', [`--net=/run/netns/lab-${name}`, '--', 'ssh', '-F', path.join(state, 'controller', 'ssh_config'), machine, command], { timeout: 60_000 });

afterAll(async () => {
  await lab([...args, 'destroy']);
});

describe('examples/sadm-ansible: playbooks from the controller, a snapshot of the lab after each play', () => {
  it('builds the machines, runs every play over SSH and passes its scenarios', async () => {
    const reports = mkdtempSync(path.join(tmpdir(), 'lab-sadm-ansible-reports-'));
    // The example's own scenarios (they import lab's harness as `sadm-lab/scenario`, the package's own name).
    const run = await lab([...args, 'test', '--reports', reports, '--scenarios', path.join(repoRoot, 'examples', 'sadm-ansible', 'scenarios')]);
    expect(run.exitCode, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toContain('controller: ran gw-play, register, web-play, rhfs-play');
    const report = latestReport(reports);
    expect(report.scenarios.map((s) => `${s.name}:${s.outcome}`).sort()).toEqual(['netboot:passed', 'services:passed']);
    const status = JSON.parse(await labOk([...args, 'status', '--json'])) as { machines: { name: string; state: string; rootStage: string }[] };
    expect(status.machines.map((m) => `${m.name}:${m.state}:${m.rootStage}`).sort()).toEqual(MACHINES.map((m) => `${m}:running:rhfs-play`));
    const inventory = JSON.parse(await labOk([...args, 'inventory', '--format', 'json'])) as { _meta: { hostvars: Record<string, { ansible_host: string }> }; contestants: { hosts: string[] } };
    expect(inventory._meta.hostvars.web!.ansible_host).toBe('192.168.1.10');
    expect(inventory.contestants.hosts).toEqual(['r00p01']);
    // The INI and YAML forms read back by Ansible itself as the JSON one says.
    for (const format of ['ini', 'yaml']) {
      const file = path.join(reports, `inventory.${format === 'ini' ? 'ini' : 'yml'}`);
      writeFileSync(file, await labOk([...args, 'inventory', '--format', format]));
      const read = JSON.parse((await execa('ansible-inventory', ['-i', file, '--list'], { env: { ANSIBLE_HOME: reports } })).stdout) as typeof inventory;
      expect(read._meta.hostvars, format).toEqual(inventory._meta.hostvars);
    }
    // The key pair: root's alone, and in no report.
    expect((await execa('stat', ['-c', '%a %U', path.join(state, 'ssh', 'id_ed25519')])).stdout).toBe('600 root');
    const privateKey = readFileSync(path.join(state, 'ssh', 'id_ed25519'), 'utf8').split('\n')[1]!;
    expect((await execa('grep', ['-rlF', privateKey, reports], { reject: false })).stdout).toBe('');
  });

  it('restores the lab after the gw play with its host keys; after a role edit, runs only its play, keeping every root when it fails', async () => {
    const hostKey = await exec('web', ['cat', '/etc/ssh/ssh_host_ed25519_key.pub']);
    expect((await ssh('web', 'hostname')).stdout).toBe('web');
    const restored = JSON.parse(await labOk([...args, 'restore', 'gw-play', '--json'])) as { restored: { machine: string; stage: string }[] };
    expect(restored.restored.map((r) => `${r.machine}@${r.stage}`).sort()).toEqual(MACHINES.map((m) => `${m}@gw-play`));
    // Just after the gw play: gw's database is there, the web play's app not yet.
    expect(await exec('gw', ['systemctl', 'is-active', 'postgresql'])).toBe('active');
    expect((await lab([...args, 'exec', 'web', '--', 'systemctl', 'is-active', 'concours'])).exitCode).not.toBe(0);
    expect(await exec('web', ['cat', '/etc/ssh/ssh_host_ed25519_key.pub'])).toBe(hostKey);
    // Strict host key checking against the machines' own keys, through gw: no "host key changed".
    expect((await ssh('web', 'hostname')).stdout).toBe('web');

    // The last play's role edited, and broken: the plays before it come from their snapshots.
    const role = path.join(dir, 'ansible', 'roles', 'nfs');
    appendFileSync(path.join(role, 'templates', 'ganesha.conf'), '# edited by the test\n');
    const tasks = path.join(role, 'tasks', 'main.yml');
    const original = readFileSync(tasks, 'utf8');
    writeFileSync(tasks, `${original}\n- name: Break on purpose\n  fail:\n    msg: broken by the test\n`);
    const failed = await lab([...args, 'up']);
    expect(failed.exitCode, failed.stderr).toBe(1);
    expect(failed.stderr).toContain('controller stage rhfs-play failed (exit 2):\nrhfs: nfs : Break on purpose: broken by the test');
    expect(failed.stderr).toContain('lab restore rhfs-play.failed');
    const snapshots = JSON.parse(await labOk([...args, 'snapshots', '--json'])) as { machine: string; snapshots: { stage: string }[] }[];
    expect(snapshots.filter((m) => m.snapshots.some((s) => s.stage === 'rhfs-play.failed')).map((m) => m.machine).sort()).toEqual(MACHINES);
    // Left running to look inside, the edit applied up to the failing task; the web play's app there, from its snapshot.
    expect(await exec('rhfs', ['tail', '-n', '1', '/etc/ganesha/ganesha.conf'])).toBe('# edited by the test');
    expect(await exec('web', ['systemctl', 'is-active', 'concours'])).toBe('active');

    writeFileSync(tasks, original);
    const resumed = await up();
    expect(cached(resumed)).toEqual(['gw-play', 'register', 'web-play']);
    expect(ran(resumed)).toEqual(['rhfs-play']);
    expect(await exec('rhfs', ['tail', '-n', '1', '/etc/ganesha/ganesha.conf'])).toBe('# edited by the test');
    expect(await exec('r00p01', ['showmount', '-e', 'rhfs.prolo'])).toContain('/export/nfsroot_ro');
  });

  it('ends a stage that hangs at its deadline, with what it started on the host and in the machines', async () => {
    const file = path.join(dir, 'lab.config.yaml');
    const config = readFileSync(file, 'utf8');
    writeFileSync(file, `${config}  - { name: hang, run: [sh, -c, 'ssh -F "$LAB_SSH_CONFIG" web sleep 313'], timeoutSeconds: 5 }\n`);
    try {
      const hung = await lab([...args, 'up']);
      expect(hung.exitCode, hung.stderr).toBe(1);
      expect(hung.stderr).toContain('controller stage hang failed (timed out after 5 s)');
      // A process still there, not a zombie its parent has yet to reap.
      const sleeping = "for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = sleep ] && [ \"$(cut -d' ' -f3 $p/stat)\" != Z ] && echo $p; done; true";
      expect(await exec('web', ['sh', '-c', sleeping])).toBe('');
      const onHost = await execa('sh', ['-c', 'for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null | grep -q "web slee[p] 313" && echo $p; done; true']);
      expect(onHost.stdout).toBe('');
    } finally {
      writeFileSync(file, config);
    }
  });

  it('applies a play again on its own result and finds nothing changed in its recap, then leaves nothing after destroy', async () => {
    const run = await lab([...args, 'up', '--idempotence', 'gw-play', '--json']);
    const report = JSON.parse(run.stdout) as { idempotent: boolean; machines: unknown[]; controller: { stage: string; changed: boolean; exitCode: number; recap: { host: string; changed: number }[]; machines: { machine: string; changes: string[] }[] }[] };
    expect(report.machines).toEqual([]);
    expect(report.controller.map((s) => `${s.stage}:${s.changed ? 'changed' : 'unchanged'}:${s.exitCode}`)).toEqual(['gw-play:unchanged:0']);
    expect(report.controller[0]!.recap.map((r) => `${r.host}:changed=${r.changed}`)).toEqual(['gw:changed=0']);
    // Judged by the recap; the file diff is shown beside it, every machine's.
    expect(report.controller[0]!.machines.map((m) => m.machine).sort()).toEqual(MACHINES);
    expect(report.idempotent, run.stdout).toBe(true);
    expect(run.exitCode).toBe(0);
    // Left at the lab's last play, running.
    const status = JSON.parse(await labOk([...args, 'status', '--json'])) as { machines: { name: string; state: string; rootStage: string }[] };
    expect(status.machines.map((m) => `${m.name}:${m.state}:${m.rootStage}`).sort()).toEqual(MACHINES.map((m) => `${m}:running:rhfs-play`));
    await labOk([...args, 'destroy']);
    expect(hostTraces(name)).toEqual([]);
  });
});

describe('controller stages refused before anything is made', () => {
  const refused = async (change: (config: string) => string, message: string) => {
    const bad = mkdtempSync(path.join(tmpdir(), 'lab-sadm-ansible-bad-'));
    cpSync(path.join(repoRoot, 'examples', 'sadm-ansible'), bad, { recursive: true });
    const file = path.join(bad, 'lab.config.yaml');
    writeFileSync(file, change(readFileSync(file, 'utf8')));
    const badName = uniqueName('sbad');
    const run = await lab(['--config', file, '--name', badName, 'up']);
    expect(run.exitCode, run.stderr).toBe(2);
    expect(run.stderr).toContain(message);
    expect(hostTraces(badName)).toEqual([]);
  };

  it('exits 2 naming the field', async () => {
    await refused((c) => c.replace('playbook-gw.yml', 'playbook-gateway.yml'), 'controller.0.playbook: ');
    await refused((c) => c.replace('run: [./scripts/register-machines.py]', 'run: [./scripts/register-machines.py], tags: [x]'), 'controller.1.tags: only for a playbook stage');
    await refused((c) => c.replace('name: web-play', 'name: web'), "controller.2.name: 'web' is the name of a machine");
    await refused((c) => c.replace('groups: [contestants]', 'groups: [contest-ants]'), 'machines.3.groups.0: an Ansible group name');
  });
});
