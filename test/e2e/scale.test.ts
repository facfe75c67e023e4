import { execa } from 'execa';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLab } from '../../lib/engine/lab.js';
import { machineApi } from '../../lib/engine/machines.js';
import { readState } from '../../lib/state/state.js';
import { NORMAL, poll } from '../../lib/wait.js';
import { hostTraces, lab, labOk, repoRoot, uniqueName } from './helpers.js';

const MACHINES = 20;
const name = uniqueName('scale');
const dir = mkdtempSync(path.join(tmpdir(), 'lab-scale-'));
const config = path.join(dir, 'lab.config.yaml');
writeFileSync(
  config,
  [`name: ${name}`, 'machines:', '  - { name: gw, address: 10.224.0.254, stages: [dns] }', ...Array.from({ length: MACHINES - 1 }, (_, i) => `  - { name: m${String(i + 1).padStart(2, '0')} }`), ''].join('\n'),
);

interface UpJson {
  machines: { name: string; booted: boolean; failedUnits: string[] }[];
}
let up: UpJson;

beforeAll(async () => {
  up = JSON.parse(await labOk(['--config', config, 'up', '--json'])) as UpJson;
});
afterAll(async () => {
  await lab(['--config', config, 'destroy']);
});

/** Host pids of the processes whose argv is exactly `argv` (a test's marker commands). */
function processesRunning(argv: string[]): number[] {
  const wanted = `${argv.join('\0')}\0`;
  return readdirSync('/proc')
    .filter((pid) => /^\d+$/.test(pid))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8') === wanted;
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** A command that ignores its deadline: a background child holds its output, another leaves its session, and it sleeps. */
const stubborn = (seconds: number) => `sleep ${seconds} & setsid sleep ${seconds + 1} & exec sleep ${seconds + 2}`;
const stubbornProcesses = (seconds: number) => [seconds, seconds + 1, seconds + 2].flatMap((s) => processesRunning(['sleep', String(s)]));

describe(`a lab of ${MACHINES} machines`, () => {
  it('comes up with every machine running, none degraded', async () => {
    expect(up.machines).toHaveLength(MACHINES);
    expect(up.machines.filter((m) => !m.booted)).toEqual([]);
    expect(up.machines.filter((m) => m.failedUnits.length > 0)).toEqual([]);
    const status = JSON.parse(await labOk(['--config', config, 'status', '--json'])) as { machines: { name: string; state: string; memoryBytes?: number }[] };
    expect(status.machines.filter((m) => m.state !== 'running')).toEqual([]);
    for (const machine of status.machines) expect(machine.memoryBytes).toBeGreaterThan(1024 * 1024);
  });

  it('ends a command that ignores its timeout, with everything it started in the machine', async () => {
    const opened = await openLab({ file: config });
    const gw = machineApi(opened, readState(opened.dirs.stateFile), 'gw');
    const started = Date.now();
    await expect(gw.succeed(stubborn(3001), { timeout: 1500 })).rejects.toThrow(/should have succeeded but timed out after 1500 ms/);
    expect(Date.now() - started).toBeLessThan(1500 + 5000);
    expect(stubbornProcesses(3001)).toEqual([]);
  });

  it('lab exec --timeout ends the command and what it started, exit 124', async () => {
    const started = Date.now();
    const result = await lab(['--config', config, 'exec', '--timeout', '1s', 'm01', '--', 'sh', '-c', stubborn(3011)]);
    expect(result.exitCode).toBe(124);
    expect(result.stderr).toContain('timed out after 1000 ms: it was ended in m01, with everything it started there');
    expect(Date.now() - started).toBeLessThan(6000);
    expect(stubbornProcesses(3011)).toEqual([]);
  });

  for (const [signal, seconds] of [['SIGINT', 3021], ['SIGTERM', 3031], ['SIGKILL', 3041]] as const) {
    it(`an interrupted lab exec (${signal}) leaves nothing running in the machine`, async () => {
      const child = execa(process.execPath, [path.join(repoRoot, 'bin', 'lab.js'), '--config', config, 'exec', 'm02', '--', 'sh', '-c', stubborn(seconds)], { reject: false });
      // NORMAL: each look reads all of /proc.
      await poll('the command to start in the machine', () => stubbornProcesses(seconds).length === 3, { within: 10_000, every: NORMAL });
      child.kill(signal);
      const result = await child;
      if (signal !== 'SIGKILL') expect(result.exitCode).toBe(signal === 'SIGINT' ? 130 : 143);
      await poll(`every process of the command to end after ${signal}`, () => stubbornProcesses(seconds).length === 0, { within: 5000, every: NORMAL });
    });
  }

  it('destroy leaves nothing', async () => {
    await labOk(['--config', config, 'destroy']);
    expect(hostTraces(name)).toEqual([]);
  });
});
