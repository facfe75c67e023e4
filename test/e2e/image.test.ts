import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { FAST, poll } from '../../lib/wait.js';
import { hostTraces, lab, labOk, repoRoot, STATE_ROOT, uniqueName } from './helpers.js';

const name = uniqueName('img');
const dir = mkdtempSync(path.join(tmpdir(), 'lab-image-'));
const config = path.join(dir, 'lab.config.json');
writeFileSync(config, JSON.stringify({ name }));
const run = (...args: string[]) => labOk(['--config', config, ...args]);

interface ImageInfo {
  key: string;
  current: boolean;
  usedBy: string[];
}
const images = async () => JSON.parse(await run('image', 'list', '--json')) as ImageInfo[];

afterAll(async () => {
  await lab(['--config', config, 'destroy']);
  expect(hostTraces(name)).toEqual([]);
});

describe('lab image upgrade', () => {
  it('interrupted, leaves the old base in place', async () => {
    await run('up');
    const [before] = await images();
    const child = execa('node', [path.join(repoRoot, 'bin', 'lab.js'), '--config', config, 'image', 'upgrade'], { reject: false });
    const partial = path.join(STATE_ROOT, name, 'pool', 'images', 'upgrade.partial');
    await poll('the upgrade to make its clone', () => existsSync(partial), { within: 60_000, every: FAST });
    child.kill('SIGINT');
    expect((await child).exitCode).toBe(130);
    expect(await images()).toEqual([expect.objectContaining({ key: before!.key, current: true })]);
  });

  it('clones, upgrades and swaps in the base; lab up rebuilds on it, its machines say so, and the scenarios pass', async () => {
    const [old] = await images();
    const upgraded = JSON.parse(await run('image', 'upgrade', '--json')) as { from: string; to: string };
    expect(upgraded.from).toBe(old!.key);
    expect(upgraded.to).toMatch(/^[0-9a-f]{16}$/);
    const listed = await images();
    expect(listed.find((i) => i.key === upgraded.to)).toMatchObject({ current: true, usedBy: [] });
    expect(listed.find((i) => i.key === old!.key)).toMatchObject({ current: false, usedBy: ['gw', 'web-silicon', 'web'] }); // kept: snapshots use it

    const report = JSON.parse(await run('up', '--json')) as { machines: { name: string; stages: { name: string; action: string }[] }[] };
    for (const machine of report.machines) expect(machine.stages.every((s) => s.action === 'build')).toBe(true);
    for (const machine of ['gw', 'web-silicon', 'web']) expect(await run('exec', machine, '--', 'cat', '/etc/lab-base-key')).toBe(`${upgraded.to}\n`);
    const test = await lab(['--config', config, 'test', '--reports', path.join(dir, 'reports')]);
    expect(test.exitCode, test.stdout).toBe(0);

    // The old snapshots are still there to restore, until pruned.
    const snapshots = JSON.parse(await run('snapshots', '--json')) as { machine: string; snapshots: { stage: string; current: boolean }[] }[];
    expect(snapshots.find((m) => m.machine === 'gw')!.snapshots.filter((s) => s.stage === 'system' && !s.current)).toHaveLength(1);
  });

  it('refuses a tarball image, saying what to do instead (exit 2)', async () => {
    const tarball = path.join(dir, 'tarball.json');
    writeFileSync(tarball, JSON.stringify({ name: uniqueName('imgt'), image: { source: 'tarball', tarball: '/nonexistent.tar' } }));
    const result = await lab(['--config', tarball, 'image', 'upgrade']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('the image comes from a tarball (image.tarball), which lab cannot upgrade in place');
    expect(result.stderr).toContain('hint: upgrade the tarball itself');
  });
});
