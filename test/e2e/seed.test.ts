import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hostTraces, lab, labOk, latestReport, repoRoot, uniqueName } from './helpers.js';

const name = uniqueName('seed');
const config = path.join(repoRoot, 'examples', 'seed-000', 'lab.config.yaml');
const args = ['--config', config, '--name', name];

afterAll(async () => {
  await lab([...args, 'destroy']);
});

describe("examples/seed-000: seed 000's lab, with a Puppet server, agents, Ansible and published ports", () => {
  it('comes up and passes its scenarios, then leaves nothing after destroy', async () => {
    const reports = mkdtempSync(path.join(tmpdir(), 'lab-seed-'));
    const run = await lab([...args, 'test', '--reports', reports]);
    expect(run.exitCode, `${run.stdout}\n${run.stderr}`).toBe(0);
    const report = latestReport(reports);
    expect(report.scenarios.map((s) => `${s.name}:${s.outcome}`).sort()).toEqual(['exclusive/idempotence:passed', 'proxy:passed', 'puppet:passed']);
    const status = JSON.parse(await labOk([...args, 'status', '--json'])) as { machines: { name: string; state: string; memoryBytes?: number }[] };
    expect(status.machines.every((m) => m.state === 'running')).toBe(true);
    await labOk([...args, 'destroy']);
    expect(hostTraces(name)).toEqual([]);
  });
});
