import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { hostTraces, lab, labOk, latestReport, repoRoot, uniqueName } from './helpers.js';

/** The global arguments of each lab made here: destroyed at the end, even when a test failed. */
const made: string[][] = [];
afterAll(async () => {
  for (const args of made) await lab([...args, 'destroy']);
});

describe('examples/sadm: several networks, routing and filtering through gw, a vm netbooted from gw', () => {
  it('comes up, passes its scenarios (netboot included), and leaves no bridge, tap or qemu after destroy', async () => {
    const name = uniqueName('sadm');
    const config = path.join(repoRoot, 'examples', 'sadm', 'lab.config.yaml');
    const args = ['--config', config, '--name', name];
    made.push(args);
    const reports = mkdtempSync(path.join(tmpdir(), 'lab-sadm-'));
    const run = await lab([...args, 'test', '--scenarios', path.join(repoRoot, 'examples', 'sadm', 'scenarios'), '--reports', reports]);
    expect(run.exitCode, `${run.stdout}\n${run.stderr}`).toBe(0);
    const report = latestReport(reports);
    expect(report.failed).toBe(0);
    expect(report.scenarios.map((s) => `${s.name}:${s.outcome}`).sort()).toEqual(['addresses:passed', 'diskless:passed', 'exclusive/diskless:passed', 'exclusive/netboot:passed', 'names:passed', 'routing:passed']);
    const bridges = (await execa('ip', ['netns', 'exec', `lab-${name}`, 'ip', '-o', 'link', 'show', 'type', 'bridge'])).stdout;
    for (const bridge of ['vz-uplink', 'vz-servers', 'vz-users', 'vz-alien']) expect(bridges).toContain(`${bridge}:`);
    // r00p03 runs as a qemu process of the lab's, on a tap joined to the users network.
    const taps = (await execa('ip', ['netns', 'exec', `lab-${name}`, 'ip', '-d', '-o', 'link', 'show', 'master', 'vz-users'])).stdout;
    expect(taps).toMatch(/tun type tap/);
    expect(hostTraces(name).some((t) => t.includes('qemu-system-x86_64') && t.includes('r00p03'))).toBe(true);
    const status = JSON.parse(await labOk([...args, 'status', '--json'])) as { machines: { name: string; state: string; memoryBytes?: number }[] };
    expect(status.machines.find((m) => m.name === 'r00p03')).toMatchObject({ state: 'running' });
    // qemu keeps net_admin (bit 12) and dac_read_search (bit 2) alone of root's capabilities, under its seccomp filter (mode 2), and it netbooted so.
    const qemu = readdirSync('/proc').filter((e) => /^\d+$/.test(e)).find((pid) => {
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        return argv[0] === 'qemu-system-x86_64' && argv.includes(`guest=${name}-r00p03,process=${name}-r00p03`);
      } catch {
        return false;
      }
    });
    expect(qemu).toBeDefined();
    const qemuStatus = readFileSync(`/proc/${qemu}/status`, 'utf8');
    for (const set of ['CapPrm', 'CapEff', 'CapBnd']) expect(qemuStatus).toMatch(new RegExp(`^${set}:\\s+0000000000001004$`, 'm'));
    expect(qemuStatus).toMatch(/^Seccomp:\s+2$/m);
    await labOk([...args, 'destroy']);
    expect(hostTraces(name)).toEqual([]);
  });
});

describe('a read-only bind declared by a stage', () => {
  it('rebuilds that stage and the ones after it when a bound file changes, and nothing else', async () => {
    const name = uniqueName('bind');
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-bind-'));
    mkdirSync(path.join(dir, 'repo'));
    writeFileSync(path.join(dir, 'repo', 'motd'), 'first\n');
    mkdirSync(path.join(dir, 'stages', 'box'), { recursive: true });
    writeFileSync(path.join(dir, 'stages', 'box', 'before.mjs'), "export default { async run(ctx) { await ctx.writeFile('/etc/before', 'x\\n'); } };\n");
    writeFileSync(path.join(dir, 'stages', 'box', 'copy.mjs'), "export default { binds: ['/srv/repo'], async run(ctx) { await ctx.exec(['cp', '/srv/repo/motd', '/etc/motd']); } };\n");
    writeFileSync(path.join(dir, 'stages', 'box', 'after.mjs'), "export default { async run(ctx) { await ctx.writeFile('/etc/after', 'y\\n'); } };\n");
    const config = path.join(dir, 'lab.config.yaml');
    writeFileSync(
      config,
      `name: ${name}\nstagesDir: stages\nzone: { dnsMachine: null }\nmachines:\n  - name: box\n    address: 10.224.0.5\n    binds: [{ source: repo, target: /srv/repo }]\n    stages: [before, copy, after]\n`,
    );
    made.push(['--config', config]);
    await labOk(['--config', config, 'up']);
    expect(await labOk(['--config', config, 'exec', 'box', '--', 'cat', '/etc/motd', '/srv/repo/motd'])).toBe('first\nfirst\n'); // bound while it runs too
    writeFileSync(path.join(dir, 'repo', 'motd'), 'second\n');
    const report = JSON.parse(await labOk(['--config', config, 'up', '--json'])) as { machines: { stages: { name: string; action: string }[] }[] };
    expect(report.machines[0]!.stages.map((s) => `${s.name}:${s.action}`)).toEqual(['system:cached', 'before:cached', 'copy:build', 'after:build']);
    expect(await labOk(['--config', config, 'exec', 'box', '--', 'cat', '/etc/motd'])).toBe('second\n');
    // A writable bind is no key: a stage cannot declare it.
    writeFileSync(config, `name: ${name}\nstagesDir: stages\nzone: { dnsMachine: null }\nmachines:\n  - name: box\n    address: 10.224.0.5\n    binds: [{ source: repo, target: /srv/repo, readonly: false }]\n    stages: [before, copy, after]\n`);
    const writable = await lab(['--config', config, 'status']);
    expect(writable.exitCode).toBe(2);
    expect(writable.stderr).toContain("binds: '/srv/repo' is writable");
    await lab(['--config', config, 'destroy']);
    expect(existsSync(path.join(dir, 'repo', 'motd'))).toBe(true);
    expect(readdirSync(path.join(dir, 'repo'))).toEqual(['motd']);
  });

  it('a bind whose source does not exist is refused before anything is made', async () => {
    const name = uniqueName('nobind');
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-bind-'));
    const config = path.join(dir, 'lab.config.yaml');
    writeFileSync(config, `name: ${name}\nzone: { dnsMachine: null }\nmachines:\n  - { name: box, address: 10.224.0.5, binds: [{ source: missing, target: /srv/x }] }\n`);
    const result = await lab(['--config', config, 'up']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`machines.0.binds.0.source: ${path.join(dir, 'missing')} does not exist`);
    expect(hostTraces(name)).toEqual([]);
  });
});
