import { appendFileSync, cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lab, labOk, repoRoot, STATE_ROOT, uniqueName } from './helpers.js';

const name = uniqueName('rst');
const dir = mkdtempSync(path.join(tmpdir(), 'lab-restore-'));
const fixtures = path.join(dir, 'fixtures');
const config = path.join(dir, 'lab.config.json');
const run = (...args: string[]) => labOk(['--config', config, ...args]);
const exec = (machine: string, ...argv: string[]) => run('exec', machine, '--', ...argv);

interface UpReport {
  machines: { name: string; booted: boolean; stages: { name: string; action: string }[] }[];
}
const actions = (report: UpReport) => Object.fromEntries(report.machines.map((m) => [m.name, m.stages.map((s) => `${s.name}:${s.action}`).join(' ')]));
const up = async (...args: string[]) => JSON.parse(await run('up', '--json', ...args)) as UpReport;

describe('restore and the stage cache, on the default lab', () => {
  beforeAll(async () => {
    cpSync(path.join(repoRoot, 'fixtures'), fixtures, { recursive: true }); // a copy this test may edit
    writeFileSync(config, JSON.stringify({ name, fixturesDir: fixtures, storage: { keepSnapshots: 1 } }));
    await up();
  });

  afterAll(async () => {
    await lab(['destroy', '--config', config]);
  });

  it('puts one machine back to an earlier stage: later changes gone, the stage itself there, running', async () => {
    await exec('web', 'touch', '/root/marker');
    const report = JSON.parse(await run('restore', 'web@haproxy', '--json')) as { restored: { machine: string; stage: string }[]; leftAlone: string[] };
    expect(report.restored.map((r) => `${r.machine}@${r.stage}`)).toEqual(['web@haproxy']);
    expect(report.leftAlone).toEqual(['gw', 'web-silicon']);
    expect((await lab(['--config', config, 'exec', 'web', '--', 'test', '-e', '/root/marker'])).exitCode).toBe(1);
    expect(await exec('web', 'dpkg-query', '-W', '-f=${Status}', 'haproxy')).toBe('install ok installed');
    expect(await exec('web', 'cat', '/etc/haproxy/haproxy.cfg')).not.toContain('use_backend web-silicon'); // the proxy stage is undone
    expect((await exec('web', 'systemctl', 'is-active', 'haproxy')).trim()).toBe('active');
    const status = JSON.parse(await run('status', '--json')) as { machines: { name: string; state: string; rootStage: string }[] };
    expect(status.machines.find((m) => m.name === 'web')).toMatchObject({ state: 'running', rootStage: 'haproxy' });
  });

  it('restores a root in which systemd made a nested subvolume, and leaves no subvolume behind', async () => {
    const pool = path.join(STATE_ROOT, name, 'pool');
    // What systemd-tmpfiles does on btrfs for /var/lib/machines (and portables): a subvolume inside the root.
    await execa('btrfs', ['subvolume', 'create', path.join(pool, 'machines', 'web', 'var', 'lib', 'machines')]);
    await run('restore', 'web@proxy');
    const subvolumes = (await execa('btrfs', ['subvolume', 'list', pool])).stdout; // every subvolume, nested ones included
    expect(subvolumes).not.toMatch(/outgoing|incoming|var\/lib\/machines/);
    expect(subvolumes).toMatch(/machines\/web$/m);
  });

  it('puts every machine that has a stage back to it', async () => {
    const report = JSON.parse(await run('restore', 'system', '--json')) as { restored: { machine: string }[] };
    expect(report.restored.map((r) => r.machine).sort()).toEqual(['gw', 'web', 'web-silicon']);
    expect((await lab(['--config', config, 'exec', 'gw', '--', 'dpkg-query', '-W', 'dnsmasq'])).exitCode).not.toBe(0);
    for (const machine of ['gw', 'web', 'web-silicon']) expect((await exec(machine, 'hostname')).trim()).toBe(machine);
  });

  it('lab up brings the lab back from its snapshots without building anything', async () => {
    const report = await up();
    expect(Object.values(actions(report)).join(' ')).not.toContain('build');
    expect(report.machines.every((m) => m.booted)).toBe(true);
    expect(await exec('gw', 'curl', '-sSk', 'https://silicon.prolo/')).toContain('<h1>silicon.prolo</h1>');
  });

  it('rebuilds only the stage whose fixture changed (and those after it); the old snapshot is kept as old', async () => {
    appendFileSync(path.join(fixtures, 'web-silicon', 'index.html'), '<p>edited by the restore test</p>\n');
    const report = await up();
    expect(actions(report)).toEqual({
      gw: 'system:cached dns:cached',
      'web-silicon': 'system:cached nginx:cached site:build',
      web: 'system:cached haproxy:cached proxy:cached',
    });
    expect(await exec('gw', 'curl', '-sSk', 'https://silicon.prolo/')).toContain('edited by the restore test');
    const snapshots = JSON.parse(await run('snapshots', '--json')) as { machine: string; snapshots: { stage: string; current: boolean; exclusiveBytes: number; createdAt: string }[] }[];
    const site = snapshots.find((m) => m.machine === 'web-silicon')!.snapshots.filter((s) => s.stage === 'site');
    expect(site.map((s) => s.current)).toEqual([false, true]); // oldest first
    for (const s of site) {
      expect(typeof s.exclusiveBytes).toBe('number');
      expect(Date.parse(s.createdAt)).not.toBeNaN();
    }
  });

  it('prunes snapshots of earlier definitions beyond storage.keepSnapshots', async () => {
    const siteSnapshots = async () => {
      const all = JSON.parse(await run('snapshots', '--json')) as { machine: string; snapshots: { stage: string; key: string; current: boolean }[] }[];
      return all.find((m) => m.machine === 'web-silicon')!.snapshots.filter((s) => s.stage === 'site');
    };
    const before = await siteSnapshots(); // one old definition, one current
    appendFileSync(path.join(fixtures, 'web-silicon', 'index.html'), '<p>edited again</p>\n');
    const report = JSON.parse(await run('up', '--json')) as { prunedSnapshots: number };
    expect(report.prunedSnapshots).toBe(1);
    const after = await siteSnapshots();
    expect(after.map((s) => s.current)).toEqual([false, true]); // keepSnapshots: 1 old one
    expect(after[0].key).toBe(before[1].key); // the one that was current is now the old one kept
  });

  it('rebuilds from a stage with --from, and only that machine', async () => {
    expect(actions(await up('--from', 'web@proxy'))).toEqual({
      gw: 'system:cached dns:cached',
      'web-silicon': 'system:cached nginx:cached site:cached',
      web: 'system:cached haproxy:cached proxy:build',
    });
  });

  it('names the valid stages when asked for an unknown one', async () => {
    const result = await lab(['restore', 'proxi', '--config', config]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain("unknown stage or checkpoint 'proxi'");
    expect(result.stderr).toContain("did you mean 'proxy'");
  });
});
