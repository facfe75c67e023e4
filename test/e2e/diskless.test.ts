import { createHash } from 'node:crypto';
import { lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLab } from '../../lib/engine/lab.js';
import type { Lab } from '../../lib/engine/lab-types.js';
import { machineApi } from '../../lib/engine/machines.js';
import { readState } from '../../lib/state/state.js';
import { sha, treeEntries } from '../../lib/stages/content.js';
import { hostTraces, lab, labOk, repoRoot, uniqueName } from './helpers.js';

// A room of 20 diskless machines on one rhfs root (examples/sadm's nfsroot stage): 18 read-only with
// SADM's tmpfs list, 2 under a volatile overlay.
const name = uniqueName('dsk');
const dir = mkdtempSync(path.join(tmpdir(), 'lab-diskless-'));
const config = path.join(dir, 'lab.config.yaml');
const ROOT = '{ machine: rhfs, path: /export/nfsroot_ro }';
writeFileSync(
  config,
  [
    `name: ${name}`,
    `stagesDir: ${path.join(repoRoot, 'examples', 'sadm', 'stages')}`,
    'machines:',
    '  - { name: gw, address: 10.224.0.254, stages: [dns] }',
    '  - { name: rhfs, address: 10.224.0.20, stages: [nfsroot] }',
    'rooms:',
    `  - { machines: 18, root: ${ROOT} }`,
    `  - { machines: 2, firstRow: 3, root: ${ROOT}, volatile: overlay }`,
    '',
  ].join('\n'),
);
const OVERLAY = ['r03p01', 'r03p02'];

interface UpJson {
  durationMs: number;
  machines: { name: string; booted: boolean; failedUnits: string[]; stages: { name: string; key: string; durationMs?: number }[] }[];
}
let up: UpJson;
let opened: Lab;
let room: string[];

beforeAll(async () => {
  up = JSON.parse(await labOk(['--config', config, 'up', '--json'])) as UpJson;
  opened = await openLab({ file: config });
  room = opened.config.machines.filter((m) => m.kind === 'diskless').map((m) => m.name);
});
afterAll(async () => {
  await lab(['--config', config, 'destroy']);
  rmSync(dir, { recursive: true, force: true });
});

const machine = (m: string) => machineApi(opened, readState(opened.dirs.stateFile), m);
const nfsroot = (rhfsRoot: string) => path.join(rhfsRoot, 'export', 'nfsroot_ro');

/** The tree's content and metadata: every entry's path, type, mode, owner, modification time, and a file's content or a link's target. */
function treeState(root: string): string {
  const hash = createHash('sha256');
  for (const { relative, full } of treeEntries(root)) {
    const stat = lstatSync(full);
    const content = stat.isFile() ? sha(readFileSync(full)) : stat.isSymbolicLink() ? 'link' : '';
    hash.update(`${relative} ${stat.mode} ${stat.uid}:${stat.gid} ${stat.mtimeMs} ${content}\0`);
  }
  return hash.digest('hex');
}

describe('a room of 20 diskless machines on one rhfs root', () => {
  let before: string;

  it('comes up with every machine running, none degraded, each with its own name, lease and machine-id from one root', async () => {
    expect(room).toHaveLength(20);
    const reported = up.machines.filter((m) => room.includes(m.name));
    expect(reported.map((m) => [m.name, m.booted, m.failedUnits, m.stages])).toEqual(room.map((m) => [m, true, [], []]));
    const nfsrootStage = up.machines.find((m) => m.name === 'rhfs')!.stages.find((s) => s.name === 'nfsroot')!;
    console.log(`lab up: ${up.durationMs} ms; rhfs@nfsroot (a copy of rhfs's root, reflinked): ${nfsrootStage.durationMs} ms`);
    before = treeState(nfsroot(opened.dirs.snapshot('rhfs', 'nfsroot', nfsrootStage.key)));

    const seen = await Promise.all(room.map(async (m) => (await machine(m).succeed('hostname; cat /etc/machine-id; ip -4 -o address show dev host0; systemctl is-system-running; du -sk /run/log/journal | cut -f1')).split('\n')));
    const [names, ids, addresses, states, journalKiB] = [0, 1, 2, 3, 4].map((i) => seen.map((lines) => lines[i]));
    expect(names).toEqual(room);
    expect(new Set(ids).size).toBe(20);
    const leases = addresses.map((line) => /inet (10\.224\.0\.\d+)\//.exec(line!)?.[1]);
    expect(new Set(leases).size).toBe(20);
    expect(states).toEqual(room.map(() => 'running'));
    // Each journal in memory is lab's 1 MiB, not journald's 8 MiB (a contestant's host memory).
    for (const kib of journalKiB) expect(Number(kib)).toBeLessThanOrEqual(1024 + 8);
    // gw names each from its lease.
    const resolved = await machine('gw').succeed(room.map((m) => `getent ahostsv4 ${m}.prolo | head -1 | cut -d' ' -f1`).join('; '));
    expect(resolved.trim().split('\n')).toEqual(leases);
    // lab exec and lab status know them as any machine.
    expect(await labOk(['--config', config, 'exec', 'r02p08', '--', 'hostname'])).toBe('r02p08\n');
    const status = JSON.parse(await labOk(['--config', config, 'status', '--json'])) as { machines: { name: string; state: string; rootStage?: string; address: string }[] };
    expect(status.machines.find((m) => m.name === 'r03p02')).toMatchObject({ state: 'running', rootStage: 'rhfs:/export/nfsroot_ro', address: leases[19] });
  });

  it('never writes the root it shares: read-only with /home writable, or under an overlay; the root is as rhfs built it', async () => {
    for (const m of room) {
      const pc = machine(m);
      await pc.succeed('echo session > /home/mark');
      if (OVERLAY.includes(m)) await pc.succeed('echo overlay > /etc/lab-written && cat /etc/lab-written');
      else expect(await pc.fail('touch /etc/lab-written')).toContain('Read-only file system');
    }
    expect(treeState(nfsroot(opened.dirs.machineRoot('rhfs')))).toBe(before);
  });

  it('boots again on the restored root of rhfs, with /home empty, none degraded, the root still untouched', async () => {
    const pids = Object.fromEntries(room.map((m) => [m, readState(opened.dirs.stateFile).machines[m]!.process!.pid]));
    const restored = JSON.parse(await labOk(['--config', config, 'restore', 'rhfs@nfsroot', '--json'])) as { rebooted: string[]; leftStopped: unknown[] };
    expect(restored.rebooted.sort()).toEqual([...room].sort());
    expect(restored.leftStopped).toEqual([]);
    for (const m of room) {
      expect(readState(opened.dirs.stateFile).machines[m]!.process!.pid).not.toBe(pids[m]);
      expect(await machine(m).succeed('ls -A /home; test ! -e /etc/lab-written; systemctl is-system-running')).toBe('running\n');
    }
    expect(treeState(nfsroot(opened.dirs.machineRoot('rhfs')))).toBe(before);
  });

  it('leaves nothing on the host after lab destroy', async () => {
    await labOk(['--config', config, 'destroy']);
    expect(hostTraces(name)).toEqual([]);
  });
});
