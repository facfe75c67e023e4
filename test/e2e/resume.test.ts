import { execa } from 'execa';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FAST, NORMAL, poll } from '../../lib/wait.js';
import { hostTraces, lab, labOk, repoRoot, soloLab, STATE_ROOT, uniqueName } from './helpers.js';

const okStage = "export default { async run(ctx) { await ctx.writeFile('/etc/ok-marker', 'ok\\n'); } };\n";
/** Clean-ups to run even when a test fails. */
const made: (() => unknown)[] = [];
const destroyLater = (config: string) => made.push(() => lab(['--config', config, 'destroy']));

afterAll(async () => {
  for (const cleanUp of made) await cleanUp();
});

describe('copy storage (no btrfs), chosen by SADM\'s container_setup.conf', () => {
  it('builds, restores and reuses the cache as btrfs does', async () => {
    const name = uniqueName('copy');
    const { dir, config } = soloLab({ ok: okStage, extra: "export default { async run(ctx) { await ctx.writeFile('/etc/extra-marker', 'x\\n'); } };\n" }, [`name: ${name}`]);
    writeFileSync(path.join(dir, 'container_setup.conf'), 'USE_BTRFS=false\n');
    destroyLater(config);
    const run = (...args: string[]) => labOk(['--config', config, ...args]);
    expect(await run('doctor')).toMatch(/storage: copy \(storage.kind is copy\)/);
    await run('up');
    expect(existsSync(path.join(STATE_ROOT, name, 'pool.img'))).toBe(false); // no loopback pool in copy mode

    await run('exec', 'solo', '--', 'touch', '/root/marker');
    await run('restore', 'solo@ok');
    expect((await lab(['--config', config, 'exec', 'solo', '--', 'test', '-e', '/root/marker'])).exitCode).toBe(1);
    expect(await run('exec', 'solo', '--', 'cat', '/etc/ok-marker')).toBe('ok\n');
    expect((await lab(['--config', config, 'exec', 'solo', '--', 'test', '-e', '/etc/extra-marker'])).exitCode).toBe(1);

    const report = JSON.parse(await run('up', '--json')) as { machines: { stages: { action: string }[] }[] };
    expect(report.machines[0].stages.map((s) => s.action)).toEqual(['cached', 'cached', 'cached']);
    expect(await run('exec', 'solo', '--', 'cat', '/etc/extra-marker')).toBe('x\n');
  });
});

describe('an interrupted lab up', () => {
  it('is locked while it runs, and after kill -9 the next lab up resumes from the last good snapshot', async () => {
    const name = uniqueName('kill');
    // The slow stage runs a long command inside the machine until the test opens the gate (a host file).
    const gate = path.join(tmpdir(), `${name}-gate`);
    made.push(() => rmSync(gate, { force: true }));
    const slowStage = [
      "import { existsSync } from 'node:fs';",
      'export default { async run(ctx) {',
      `  if (!existsSync(${JSON.stringify(gate)})) await ctx.exec(['sh', '-c', 'touch /started; exec sleep 600']);`,
      "  await ctx.writeFile('/etc/slow-marker', 'done\\n');",
      '} };',
      '',
    ].join('\n');
    const { config } = soloLab({ ok: okStage, slow: slowStage }, [`name: ${name}`]);
    destroyLater(config);
    const root = path.join(STATE_ROOT, name, 'pool', 'machines', 'solo');
    const snapshots = path.join(STATE_ROOT, name, 'pool', 'snapshots', 'solo');

    const first = execa(process.execPath, [path.join(repoRoot, 'bin', 'lab.js'), '--config', config, 'up'], { reject: false });
    await poll('the slow stage to start', () => existsSync(path.join(root, 'started')), { within: 120_000, every: FAST });

    const busy = await lab(['--config', config, 'restore', 'solo@ok']);
    expect(busy.exitCode).toBe(3);
    expect(busy.stderr).toMatch(/this lab is busy: 'lab up' \(pid \d+\)/);

    first.kill('SIGKILL');
    await first;
    const orphans = () => hostTraces(name).filter((t) => t.startsWith('process') && t.includes('--pipe'));
    // The build step dies with lab (parent-death signal): nothing goes on writing into the root.
    // NORMAL: each look reads all of /proc.
    await poll('the build step to die with lab', () => orphans().length === 0, { within: 10_000, every: NORMAL });
    expect(readdirSync(snapshots).filter((s) => !s.endsWith('.json')).map((s) => s.split('@')[0]).sort()).toEqual(['ok', 'system']);

    writeFileSync(gate, '');
    const report = JSON.parse(await labOk(['--config', config, 'up', '--json'])) as { machines: { stages: { name: string; action: string }[] }[] };
    expect(report.machines[0].stages.map((s) => `${s.name}:${s.action}`)).toEqual(['system:cached', 'ok:cached', 'slow:build']);
    expect(orphans()).toEqual([]);
    expect(await labOk(['--config', config, 'exec', 'solo', '--', 'cat', '/etc/ok-marker', '/etc/slow-marker'])).toBe('ok\ndone\n');
    expect((await lab(['--config', config, 'exec', 'solo', '--', 'test', '-e', '/started'])).exitCode).toBe(1); // the half-built root was discarded
  });
});
