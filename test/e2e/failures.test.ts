import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { hostTraces, lab, labOk, repoRoot, soloLab, STATE_ROOT, uniqueName } from './helpers.js';

const okStage = "export default { async run(ctx) { await ctx.writeFile('/etc/ok-marker', 'ok\\n'); } };\n";
const brokenStage = "export default { async run(ctx) { await ctx.exec(['sh', '-c', 'echo half-done > /etc/half-done; echo doomed-output; exit 7']); } };\n";
const fixedStage = "export default { async run(ctx) { await ctx.exec(['sh', '-c', 'echo fixed > /etc/fixed-marker']); } };\n";

const made: string[] = [];
afterAll(async () => {
  for (const name of made) await lab(['destroy', '--name', name]);
});

describe('bad input is refused before the host is touched', () => {
  it('exits 2 on an invalid config, naming the field, creating nothing', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-e2e-'));
    writeFileSync(path.join(dir, 'bad.yaml'), 'machines:\n  - name: gw\n    address: 10.224.0.254\n  - name: db\n    address: 10.224.0.254\n');
    const name = uniqueName('bad');
    const result = await lab(['up', '--name', name, '--config', path.join(dir, 'bad.yaml')]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain("machines.1.address: 10.224.0.254 is already used by machine 'gw'");
    expect(hostTraces(name)).toEqual([]);
  });

  it('exits 2 on an unknown stage module, naming the stage', async () => {
    const { config } = soloLab({ ok: okStage });
    writeFileSync(config, 'stagesDir: stages\nzone: { dnsMachine: null }\nmachines:\n  - name: solo\n    address: 10.224.0.9\n    stages: [ok, missing]\n');
    const name = uniqueName('bad');
    const result = await lab(['up', '--name', name, '--config', config]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain("machines.0.stages: unknown stage 'missing' for machine 'solo'");
    expect(result.stderr).toContain('stages there: ok');
    expect(hostTraces(name)).toEqual([]);
  });

  it('says why root is needed, and exits 3', async () => {
    const name = uniqueName('bad');
    const result = await execa('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, path.join(repoRoot, 'bin', 'lab.js'), 'up', '--name', name], {
      reject: false,
      cwd: '/',
    });
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toContain('lab up must run as root: it creates network namespaces');
    expect(hostTraces(name)).toEqual([]);
  });
});

describe('a failing stage', () => {
  it('stops there with the command and its output, keeps the good snapshots, and resumes from them', async () => {
    const { dir, config } = soloLab({ ok: okStage, broken: brokenStage });
    const name = uniqueName('fail');
    made.push(name);
    const failed = await lab(['up', '--name', name, '--config', config]);
    expect(failed.exitCode).toBe(1);
    expect(failed.stderr).toContain('stage solo@broken failed');
    expect(failed.stderr).toContain('exit code 7');
    expect(failed.stderr).toContain('doomed-output');
    expect(failed.stderr).toContain(`full log: ${path.join(STATE_ROOT, name, 'logs', 'solo', 'broken.log')}`);
    const snapshots = readdirSync(path.join(STATE_ROOT, name, 'pool', 'snapshots', 'solo'))
      .filter((s) => !s.endsWith('.json'))
      .map((s) => s.split('@')[0]);
    expect(snapshots.sort()).toEqual(['broken.failed', 'ok', 'system']);
    expect(failed.stderr).toContain('its root at the failure is kept: lab restore solo@broken.failed');
    const listed = JSON.parse(await labOk(['snapshots', '--name', name, '--config', config, '--json'])) as { snapshots: { stage: string }[] }[];
    expect(listed[0].snapshots.map((s) => s.stage)).toContain('broken.failed');

    // The failed state comes back to look inside: what the stage did before it failed is there.
    await labOk(['restore', '--name', name, '--config', config, 'solo@broken.failed']);
    const look = (...argv: string[]) => labOk(['exec', '--name', name, '--config', config, 'solo', '--', ...argv]);
    expect(await look('cat', '/etc/ok-marker', '/etc/half-done')).toBe('ok\nhalf-done\n');
    const status = JSON.parse(await labOk(['status', '--name', name, '--config', config, '--json'])) as { machines: { rootStage?: string }[] };
    expect(status.machines[0].rootStage).toBe('broken.failed');
    const none = await lab(['restore', '--name', name, '--config', config, 'solo@ok.failed']);
    expect(none.exitCode).toBe(2); // nothing to restore: bad input, nothing touched
    expect(none.stderr).toContain('no failed state of solo@ok is kept');

    writeFileSync(path.join(dir, 'stages', 'solo', 'broken.mjs'), fixedStage);
    const report = JSON.parse(await labOk(['up', '--name', name, '--config', config, '--json'])) as {
      machines: { stages: { name: string; action: string }[] }[];
    };
    expect(report.machines[0].stages.map((s) => `${s.name}:${s.action}`)).toEqual(['system:cached', 'ok:cached', 'broken:build']);
    expect(await look('cat', '/etc/ok-marker', '/etc/fixed-marker')).toBe('ok\nfixed\n');
    expect((await lab(['exec', '--name', name, '--config', config, 'solo', '--', 'test', '-e', '/etc/half-done'])).exitCode).toBe(1);
  });
});

describe('limits of a stage', () => {
  it('a stage printing 1 GiB succeeds; its log stops at 64 MiB and says how much it dropped', async () => {
    const loud = "export default { async run(ctx) { await ctx.exec(['sh', '-c', 'yes | head -c 1G; echo the-end']); await ctx.writeFile('/etc/loud-marker', 'done\\n'); } };\n";
    const { config } = soloLab({ loud });
    const name = uniqueName('loud');
    made.push(name);
    const up = await lab(['up', '--name', name, '--config', config]);
    expect(up.exitCode, up.stderr).toBe(0);
    expect(await labOk(['exec', '--name', name, '--config', config, 'solo', '--', 'cat', '/etc/loud-marker'])).toBe('done\n');
    const log = path.join(STATE_ROOT, name, 'logs', 'solo', 'loud.log');
    expect(statSync(log).size).toBeLessThan(64 * 1024 * 1024 + 4096);
    // The command's end, then the stage's own last line (its writeFile).
    expect(readFileSync(log, 'utf8').slice(-300)).toMatch(/\[log limit reached: 960\.0 MiB of this command's output dropped\]\n\[exit 0, \d+ ms\]\nwrote \/etc\/loud-marker\n$/);
  });

  it("a stage's own timeout ends its command, and the failure says where the timeout is set", async () => {
    const slow = "export default { timeoutSeconds: 3, async run(ctx) { await ctx.exec(['sleep', '60']); } };\n";
    const { config } = soloLab({ slow });
    const name = uniqueName('slow');
    made.push(name);
    const started = Date.now();
    const up = await lab(['up', '--name', name, '--config', config]);
    expect(up.exitCode).toBe(1);
    expect(Date.now() - started).toBeLessThan(50_000);
    expect(up.stderr).toContain('stage solo@slow failed');
    expect(up.stderr).toContain('timed out after 3000 ms');
    expect(up.stderr).toContain("'# lab: timeout=30m' in its header, timeoutSeconds in its definition, or stageLimits.timeoutSeconds");
  });
});

describe('two labs side by side', () => {
  it('run at once with the same zone without colliding, and each is destroyed alone', async () => {
    const { config } = soloLab({ ok: okStage });
    const [a, b] = [uniqueName('sidea'), uniqueName('sideb')];
    made.push(a, b);
    await Promise.all([labOk(['up', '--name', a, '--config', config]), labOk(['up', '--name', b, '--config', config])]);
    for (const name of [a, b]) {
      const reply = await labOk(['exec', '--name', name, '--config', config, 'solo', '--', 'ping', '-c', '1', '-W', '2', '10.224.0.1']);
      expect(reply).toContain('1 received');
    }
    await labOk(['destroy', '--name', a, '--config', config]);
    expect(hostTraces(a)).toEqual([]);
    expect(hostTraces(b)).not.toEqual([]);
    const still = await labOk(['exec', '--name', b, '--config', config, 'solo', '--', 'cat', '/etc/ok-marker']);
    expect(still).toBe('ok\n');
  });
});
