import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostTraces, lab, labOk, uniqueName } from './helpers.js';

/** The debugging loop on one default lab: checkpoints, bisect, link faults, captures, record, graph. */
const name = uniqueName('dbg');
const dir = mkdtempSync(path.join(tmpdir(), 'lab-debug-'));
const config = path.join(dir, 'lab.config.json');
const run = (...args: string[]) => labOk(['--config', config, ...args]);
const exec = (machine: string, ...argv: string[]) => run('exec', machine, '--', ...argv);
const fails = async (machine: string, ...argv: string[]) => (await lab(['--config', config, 'exec', machine, '--', ...argv])).exitCode !== 0;

beforeAll(async () => {
  writeFileSync(config, JSON.stringify({ name }));
  await run('up');
});

afterAll(async () => {
  await lab(['destroy', '--config', config]);
  expect(hostTraces(name)).toEqual([]);
});

describe('checkpoints of the whole lab', () => {
  it('save every machine at once and bring them all back, running; an earlier stage removes them again', async () => {
    await exec('gw', 'sh', '-c', 'echo gw-marker > /root/marker');
    await exec('web', 'sh', '-c', 'echo web-marker > /root/marker');
    const saved = JSON.parse(await run('checkpoint', 'save', 'markers', '--json')) as { machines: { name: string; running: boolean }[]; frozen: boolean };
    expect(saved.machines.map((m) => m.name).sort()).toEqual(['gw', 'web', 'web-silicon']);
    expect(saved.frozen).toBe(true);

    await exec('gw', 'rm', '/root/marker');
    await exec('web', 'sh', '-c', 'echo changed > /root/marker');
    const restored = JSON.parse(await run('restore', 'markers', '--json')) as { checkpoint: string; restored: { machine: string; bootMs?: number }[] };
    expect(restored.checkpoint).toBe('markers');
    expect(restored.restored.every((r) => r.bootMs !== undefined)).toBe(true);
    expect(await exec('gw', 'cat', '/root/marker')).toBe('gw-marker\n');
    expect(await exec('web', 'cat', '/root/marker')).toBe('web-marker\n');
    // Restored machines work together: web-silicon got its address from gw again, and resolves.
    expect((await exec('web-silicon', 'getent', 'hosts', `gw.prolo`)).trim()).toMatch(/^10\.224\.0\.254\s/);

    await run('restore', 'system');
    expect(await fails('gw', 'test', '-e', '/root/marker')).toBe(true);
    expect(await fails('web', 'test', '-e', '/root/marker')).toBe(true);
    await run('up');
    expect(await fails('web', 'test', '-e', '/root/marker')).toBe(true); // lab up brings stages, never a checkpoint
    expect(await exec('web', 'systemctl', 'is-active', 'haproxy')).toBe('active\n');

    const listed = JSON.parse(await run('checkpoint', 'list', '--json')) as { name: string }[];
    expect(listed.map((c) => c.name)).toEqual(['markers']);
    await run('checkpoint', 'delete', 'markers');
    expect(JSON.parse(await run('checkpoint', 'list', '--json'))).toEqual([]);
  });

  it('refuse names that collide or do not exist, before anything changes', async () => {
    const collide = await lab(['--config', config, 'checkpoint', 'save', 'haproxy']);
    expect(collide.exitCode).toBe(2);
    expect(collide.stderr).toContain("checkpoint name 'haproxy' is the name of a stage");
    const bad = await lab(['--config', config, 'checkpoint', 'save', 'Bad_Name']);
    expect(bad.exitCode).toBe(2);
    const unknown = await lab(['--config', config, 'restore', 'nosuch']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain("unknown stage or checkpoint 'nosuch'");
    const deleteUnknown = await lab(['--config', config, 'checkpoint', 'delete', 'nosuch']);
    expect(deleteUnknown.exitCode).toBe(2);
    expect(deleteUnknown.stderr).toContain("unknown checkpoint 'nosuch'");
  });
});
