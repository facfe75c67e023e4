import { existsSync, mkdtempSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FAST, poll } from '../../lib/wait.js';
import { hostTraces, lab, labOk, repoRoot, soloLab, STATE_ROOT, uniqueName } from './helpers.js';

const made: string[] = [];
afterAll(async () => {
  for (const name of made) await lab(['destroy', '--name', name]);
});

/** A PATH that has every command of the host's but `hidden`. */
function pathWithout(hidden: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'lab-path-'));
  for (const source of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (!existsSync(source)) continue;
    for (const command of readdirSync(source)) {
      if (command === hidden || existsSync(path.join(dir, command))) continue;
      symlinkSync(path.join(source, command), path.join(dir, command));
    }
  }
  return dir;
}

describe('a host that lost a tool', () => {
  it('doctor lists debootstrap as missing and exits 0; up refuses with the package; destroy still removes the lab', async () => {
    const name = uniqueName('nodb');
    made.push(name);
    const { config } = soloLab({ ok: "export default { async run(ctx) { await ctx.writeFile('/etc/ok', 'ok\\n'); } };\n" }, [`name: ${name}`]);
    await labOk(['--config', config, 'up']);
    const env = { PATH: pathWithout('debootstrap') };

    const doctor = await lab(['--config', config, 'doctor'], { env });
    expect(doctor.exitCode, doctor.stderr).toBe(0);
    expect(doctor.stdout).toMatch(/MISSING debootstrap\s+builds the base image \(apt-get install debootstrap\)/);
    expect(doctor.stdout).toContain('machine solo running');
    expect(doctor.stdout).toContain('NOT READY');

    const up = await lab(['--config', config, 'up'], { env });
    expect(up.exitCode).toBe(3);
    expect(up.stderr).toContain('missing host tools: debootstrap (builds the base image)');
    expect(up.stderr).toContain('apt-get install -y debootstrap');

    const destroy = await lab(['--config', config, 'destroy'], { env });
    expect(destroy.exitCode, destroy.stderr).toBe(0);
    expect(hostTraces(name)).toEqual([]);
    const after = await lab(['--config', config, 'doctor', '--json'], { env });
    expect((JSON.parse(after.stdout) as { leftovers: string[] }).leftovers).toEqual([]);
  });
});

describe('a host without qemu', () => {
  it('refuses a lab with a vm, naming the package, before anything is made', async () => {
    const name = uniqueName('noqemu');
    const config = path.join(repoRoot, 'examples', 'sadm', 'lab.config.yaml');
    const up = await lab(['--config', config, '--name', name, 'up'], { env: { PATH: pathWithout('qemu-system-x86_64') } });
    expect(up.exitCode).toBe(3);
    expect(up.stderr).toContain('qemu-system-x86_64 (runs the vm machines)');
    expect(up.stderr).toContain('apt-get install -y qemu-system-x86');
    expect(hostTraces(name)).toEqual([]);
  });
});

describe('drivers own what they make', () => {
  it('keeps the base image build log, measures snapshot space, and lists every leftover until destroy', async () => {
    const name = uniqueName('drv');
    made.push(name);
    const blob = "export default { async run(ctx) { await ctx.exec(['sh', '-c', 'head -c 4194304 /dev/urandom > /blob']); } };\n";
    const drop = "export default { async run(ctx) { await ctx.exec(['rm', '/blob']); } };\n";
    const { config } = soloLab({ ok: blob, drop }, [`name: ${name}`]);
    await labOk(['--config', config, 'up']);
    const imageLog = readFileSync(path.join(STATE_ROOT, name, 'logs', 'image.log'), 'utf8');
    expect(imageLog).toMatch(/^base image [0-9a-f]{16}: debootstrap debian bookworm from \S+: /);
    expect(imageLog).toMatch(/I: Base system installed successfully|importing the base image from/);

    // Quota groups give the space each snapshot holds alone: once the next stage deleted the blob,
    // only the snapshot of the stage that wrote it holds it.
    const snapshots = JSON.parse(await labOk(['--config', config, 'snapshots', '--json'])) as { snapshots: { stage: string; exclusiveBytes?: number }[] }[];
    const ok = snapshots[0].snapshots.find((s) => s.stage === 'ok')!;
    expect(ok.exclusiveBytes).toBeGreaterThanOrEqual(4 * 1024 * 1024);
    expect(ok.exclusiveBytes).toBeLessThan(8 * 1024 * 1024);

    const doctor = JSON.parse(await labOk(['--config', config, 'doctor', '--json'])) as { leftovers: string[] };
    expect(doctor.leftovers).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^machine solo running \(pid \d+\)$/),
        expect.stringMatching(/^simulated internet server \(pid \d+\)$/),
        `network namespace lab-${name}`,
        `mount ${path.join(STATE_ROOT, name, 'pool')}`,
        expect.stringMatching(/^loop device \/dev\/loop\d+/),
        `state directory ${path.join(STATE_ROOT, name)}`,
      ]),
    );
    await labOk(['--config', config, 'destroy']);
    expect(hostTraces(name)).toEqual([]);
  });
});

describe('a machine whose nspawn died before it', () => {
  it('is found in the lab\'s cgroups by doctor, and ended by destroy', async () => {
    const name = uniqueName('orph');
    made.push(name);
    const { config } = soloLab({ ok: "export default { async run(ctx) { await ctx.writeFile('/etc/ok', 'ok\\n'); } };\n" }, [`name: ${name}`]);
    await labOk(['--config', config, 'up']);
    const status = JSON.parse(await labOk(['--config', config, 'status', '--json'])) as { machines: { pid?: number }[] };
    const nspawn = status.machines[0]!.pid!;
    process.kill(nspawn, 'SIGKILL'); // nspawn alone: its container's init outlives it
    await poll('nspawn to be gone', () => !existsSync(`/proc/${nspawn}`) || readFileSync(`/proc/${nspawn}/stat`, 'utf8').includes(') Z '), { within: 10_000, every: FAST });
    const doctor = JSON.parse(await labOk(['--config', config, 'doctor', '--json'])) as { leftovers: string[] };
    expect(doctor.leftovers.join('\n')).toMatch(/\d+ process\(es\) in the lab's cgroups without their machine/);
    expect(doctor.leftovers.join('\n')).not.toContain('machine solo running');
    await labOk(['--config', config, 'destroy']);
    expect(hostTraces(name)).toEqual([]);
  });
});
