/**
 * The engine's orchestration (lab up, restore, checkpoint) against fake drivers (./fakes.ts): what
 * is built, in which order machines boot, what a failing or interrupted stage leaves. Nothing runs
 * on the host but `sleep` processes standing for machines; the lab lives in a temporary directory.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { defaultLab } from '../../lib/config/default.js';
import { buildConcurrency } from '../../lib/host/limits.js';
import { findCommand } from '../../lib/host/prereq.js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { listCheckpoints, saveCheckpoint } from '../../lib/engine/checkpoints.js';
import { finishAbandonedBisects } from '../../lib/engine/bisect.js';
import { checkIdempotence } from '../../lib/engine/idempotence.js';
import { destroy, down, power } from '../../lib/engine/lifecycle.js';
import { isRunning, stopMachine } from '../../lib/engine/machines.js';
import type { UpEvent } from '../../lib/engine/progress.js';
import { restore } from '../../lib/engine/restore.js';
import { status } from '../../lib/engine/status.js';
import { diagnostics } from '../../lib/engine/test.js';
import { refOf } from '../../lib/state/process.js';
import { up } from '../../lib/engine/up.js';
import { dryRun } from '../../lib/engine/dry-run.js';
import { HostError, StageError, UsageError } from '../../lib/errors.js';
import { interruptedWork } from '../../lib/engine/recover.js';
import { runInterruptCleanups } from '../../lib/interrupt.js';
import { identityFiles } from '../../lib/stages/system.js';
import { type FakeLab, fakeLab, STAGES } from './fakes.js';

const host = vi.hoisted(() => ({ record: (_event: string) => undefined as void }));

// What the engine does to the host itself, whatever its drivers: raise kernel limits in /proc/sys
// (lab up), and freeze the cgroups of running machines (checkpoint save), which for the fakes'
// machines (plain processes) would be the cgroup of the test itself.
vi.mock('../../lib/host/limits.js', async (importOriginal) => ({ ...(await importOriginal<typeof import('../../lib/host/limits.js')>()), raiseLimits: () => [] }));
vi.mock('../../lib/host/cgroups.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../lib/host/cgroups.js')>()),
  containerCgroup: (leaderPid: number) => `/fake/cgroup/${leaderPid}`,
  setFrozen: async (dirs: readonly string[], frozen: boolean) => host.record(`${frozen ? 'freeze' : 'thaw'} ${dirs.length}`),
}));

let fake: FakeLab;

beforeEach(async () => {
  // The host checks ask for root: these tests run as root whoever runs them (the fakes need no tool).
  vi.spyOn(process, 'getuid').mockReturnValue(0);
  fake = await fakeLab();
  host.record = (event) => fake.events.push(event);
});

afterEach(async () => {
  vi.restoreAllMocks();
  await fake.cleanup();
});

const MACHINES = Object.keys(STAGES);
const stagesOf = (machine: string) => ['system', ...STAGES[machine]!];
const root = (machine: string) => fake.lab.dirs.machineRoot(machine);
const running = (machine: string) => isRunning(fake.state(), machine);

describe('lab up', () => {
  it('builds every stage once, in order, then boots each machine after those it depends on', async () => {
    const report = await up(fake.lab);
    const { events } = fake;
    expect(events.of('image')).toEqual(['build']);
    for (const machine of MACHINES) {
      const own = stagesOf(machine).map((stage) => `${machine}@${stage}`);
      expect(events.of('step').filter((s) => s.startsWith(`${machine}@`))).toEqual(own);
      expect(fake.taken().filter((s) => s.startsWith(`${machine}@`))).toEqual(own);
      expect(events.at(`start ${machine}`)).toBeGreaterThan(events.at(`snapshot machines/${machine} -> snapshots/${machine}/${stagesOf(machine).at(-1)}@${fake.keyOf(machine, stagesOf(machine).at(-1)!)}`));
      const last = stagesOf(machine).at(-1)!;
      expect(fake.state().machines[machine]).toMatchObject({ rootStage: last, rootKey: fake.keyOf(machine, last) });
      expect(running(machine)).toBe(true);
    }
    expect(events.of('step')).toHaveLength(8);
    // web-silicon takes its address from gw's DHCP: it starts once gw is up with its interfaces configured; web after both.
    expect(events.of('start')).toEqual(['gw', 'web-silicon', 'web']);
    expect(events.at('start web-silicon')).toBeGreaterThan(events.at('online gw'));
    expect(events.at('start web')).toBeGreaterThan(events.at('online web-silicon'));
    expect(report.machines.map((m) => [m.name, m.booted, m.stages.map((s) => s.action)])).toEqual(MACHINES.map((m) => [m, true, stagesOf(m).map(() => 'build')]));
  });

  it('a second time builds nothing and boots nothing that runs already', async () => {
    await up(fake.lab);
    const mark = fake.events.mark();
    const report = await up(fake.lab);
    for (const kind of ['image', 'step', 'snapshot', 'copy', 'start', 'stop']) expect(fake.events.of(kind, mark), kind).toEqual([]);
    expect(report.baseImage).toBe('pool');
    expect(report.machines.map((m) => [m.name, m.booted, m.stages.map((s) => s.action)])).toEqual(MACHINES.map((m) => [m, false, stagesOf(m).map(() => 'cached')]));
    for (const machine of MACHINES) expect(running(machine)).toBe(true);
  });

  it('rebuilds a changed stage and the later ones of its machine only, and reboots what depends on that machine', async () => {
    await up(fake.lab);
    const before = Object.fromEntries(MACHINES.flatMap((m) => stagesOf(m).map((s) => [`${m}@${s}`, fake.keyOf(m, s)])));
    await fake.writeStage('web-silicon', 'nginx', '#!/bin/sh\necho nginx, configured otherwise\n');
    const mark = fake.events.mark();
    await up(fake.lab);
    expect(fake.events.of('step', mark)).toEqual(['web-silicon@nginx', 'web-silicon@site']);
    expect(fake.taken(mark)).toEqual(['web-silicon@nginx', 'web-silicon@site']);
    // Its root starts again from the stage before, which is not rebuilt.
    expect(fake.events.of('copy', mark)).toEqual([`snapshots/web-silicon/system@${before['web-silicon@system']} -> machines/web-silicon`]);
    for (const [stage, key] of Object.entries(before)) {
      if (stage === 'web-silicon@nginx' || stage === 'web-silicon@site') expect(fake.keyOf(...(stage.split('@') as [string, string])), stage).not.toBe(key);
      else expect(fake.keyOf(...(stage.split('@') as [string, string])), stage).toBe(key);
    }
    expect(fake.marks(root('web-silicon')).nginx).toBe('started\n#!/bin/sh\necho nginx, configured otherwise\n');
    // web is rebuilt from nothing but rebooted after web-silicon, to see it afresh; gw is left running.
    expect(fake.events.of('stop', mark)).toEqual(['web-silicon hard', 'web clean']);
    expect(fake.events.of('start', mark)).toEqual(['web-silicon', 'web']);
    // The earlier definition's snapshot is kept (restorable, pruned later).
    expect(existsSync(fake.lab.dirs.snapshot('web-silicon', 'nginx', before['web-silicon@nginx']!))).toBe(true);
  });

  it('on a failing stage, keeps the last good snapshot and the failed root apart, exits 1, and boots nothing that depends on the machine', async () => {
    fake.buildSteps.failing.add('web-silicon@nginx');
    const error = await up(fake.lab).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StageError);
    expect(error).toMatchObject({ exitCode: 1, machine: 'web-silicon', stage: 'nginx' });
    expect((error as StageError).message).toContain('fails on purpose');
    expect((error as StageError).hint).toContain('lab restore web-silicon@nginx.failed');
    // The stage after it never ran; its machine's last good snapshot is the stage before.
    expect(fake.events.of('step').filter((s) => s.startsWith('web-silicon@'))).toEqual(['web-silicon@system', 'web-silicon@nginx']);
    const keys = { system: fake.keyOf('web-silicon', 'system'), nginx: fake.keyOf('web-silicon', 'nginx') };
    expect(fake.snapshotsOf('web-silicon')).toEqual([`nginx.failed@${keys.nginx}`, `system@${keys.system}`]);
    expect(fake.marks(fake.lab.dirs.snapshot('web-silicon', 'nginx.failed', keys.nginx))).toEqual({ nginx: 'started\n' });
    expect(fake.state().machines['web-silicon']!.rootKey).toBeUndefined(); // its root holds half a stage
    // gw boots; web's own stages are built, but it does not boot without web-silicon.
    expect(fake.taken().filter((s) => s.startsWith('web@'))).toEqual(stagesOf('web').map((s) => `web@${s}`));
    expect(fake.events.of('start')).toEqual(['gw']);
    expect([running('gw'), running('web-silicon'), running('web')]).toEqual([true, false, false]);

    // Fixed, the next up resumes from the failed stage.
    fake.buildSteps.failing.clear();
    const mark = fake.events.mark();
    await up(fake.lab);
    expect(fake.events.of('step', mark)).toEqual(['web-silicon@nginx', 'web-silicon@site']);
    expect(fake.events.of('start', mark)).toEqual(['web-silicon', 'web']);
    for (const machine of MACHINES) expect(running(machine)).toBe(true);
  });

  it("waits for a stage's readiness after every boot of its machine, before the machines that depend on it start", async () => {
    await fake.writeStage('web-silicon', 'nginx', '#!/bin/sh\n# lab: ready=unit:nginx\n# lab: ready=cmd:test -e /run/nginx.pid\necho nginx\n');
    await up(fake.lab);
    const { events } = fake;
    const unit = 'exec web-silicon systemctl is-active nginx';
    const command = 'exec web-silicon /bin/sh -c test -e /run/nginx.pid';
    expect(events.at(unit)).toBeGreaterThan(events.at('online web-silicon'));
    expect(events.at(command)).toBeGreaterThan(events.at(unit));
    expect(events.at('start web')).toBeGreaterThan(events.at(command));
    // Cached and booted again (its dependency rebooted): ready again before web.
    await fake.writeStage('gw', 'dns', '#!/bin/sh\necho gw dns, changed\n');
    const mark = events.mark();
    await up(fake.lab);
    expect(events.since(mark)).toContain(unit);
    expect(events.since(mark).indexOf('start web')).toBeGreaterThan(events.since(mark).indexOf(command));
  });

  it("gives a stage's commands its header's timeout, else the config's, and its log the config's limit", async () => {
    await fake.cleanup();
    fake = await fakeLab({ stageLimits: { timeoutSeconds: 60, logMiB: 8 } });
    await fake.writeStage('web', 'proxy', '#!/bin/sh\n# lab: timeout=30m\necho proxy\n');
    await up(fake.lab);
    expect(fake.buildSteps.options.get('web@proxy')).toMatchObject({ timeout: 1_800_000, logLimitBytes: 8 * 1024 * 1024 });
    expect(fake.buildSteps.options.get('web@haproxy')).toMatchObject({ timeout: 60_000, logLimitBytes: 8 * 1024 * 1024 });
  });

  it.skipIf(!findCommand('qemu-img'))('refuses a vm whose disk is not a disk image, exit 2 naming the field, before anything is made', async () => {
    await fake.cleanup();
    const disk = path.join(tmpdir(), `lab-not-a-disk-${process.pid}.txt`);
    writeFileSync(disk, 'a text file\n');
    fake = await fakeLab({ machines: [...defaultLab.machines, { name: 'pc', kind: 'vm', vm: { boot: 'disk', disk } }] });
    vi.spyOn(fake.lab.vms, 'start').mockRejectedValue(new Error('no qemu in unit tests')); // had the check let it through
    await expect(up(fake.lab)).rejects.toMatchObject({ exitCode: 2, message: expect.stringContaining(`machines.3.vm.disk: ${disk}: not a disk image`) });
    expect(fake.events.all).toEqual([]);
    rmSync(disk);
  });

  it("a failing run's report has a vm's console as its journal, also once the vm is down", async () => {
    await fake.cleanup();
    fake = await fakeLab({ machines: [...defaultLab.machines, { name: 'pc', kind: 'vm', vm: { boot: 'network' } }] });
    mkdirSync(path.dirname(fake.lab.dirs.consoleLog('pc')), { recursive: true });
    writeFileSync(fake.lab.dirs.consoleLog('pc'), 'iPXE 1.21\r\n\u001b[0mKernel panic - not syncing\n');
    const pc = (await diagnostics(fake.lab)).find((m) => m.machine === 'pc')!;
    expect(pc).toEqual({ machine: 'pc', failedUnits: '(not running)', journal: 'iPXE 1.21\nKernel panic - not syncing' });
  });

  it("a stage's commands have 15 minutes by default, and its log 64 MiB", async () => {
    await up(fake.lab);
    expect(fake.buildSteps.options.get('web@proxy')).toMatchObject({ timeout: 900_000, logLimitBytes: 64 * 1024 * 1024 });
  });
});

describe('lab up --dry-run', () => {
  it('says what would be built and why, what would boot again, and does nothing', async () => {
    await up(fake.lab);
    await fake.writeStage('web', 'proxy', '#!/bin/sh\necho proxy, edited\n');
    const mark = fake.events.mark();
    const forecast = dryRun(fake.lab, {});
    expect(fake.events.since(mark)).toEqual([]);
    const web = forecast.machines.find((m) => m.machine === 'web')!;
    expect(web).toMatchObject({ power: 'rebooted', why: 'its root is built again' });
    expect(web.stages.map((s) => [s.stage, s.action])).toEqual([['system', 'cached'], ['haproxy', 'cached'], ['proxy', 'build']]);
    expect(web.stages.at(-1)!.why).toMatch(/^its key changed \(\w{12}; the pool has \w{12}\)/);
    expect(forecast.machines.find((m) => m.machine === 'gw')).toMatchObject({ power: 'left running', why: 'its root is its last stage already' });
    expect(dryRun(fake.lab, { noCache: true }).machines[0]!.stages[0]!.why).toBe('--no-cache');
  });

  it('and lab up stops a machine the config no longer names and removes its root', async () => {
    await up(fake.lab);
    const without = <T extends { name: string }>(machines: T[]) => machines.filter((m) => m.name !== 'web');
    fake.lab.config = { ...fake.lab.config, machines: without(fake.lab.config.machines) };
    fake.lab.loaded = { ...fake.lab.loaded, machines: without(fake.lab.loaded.machines) } as typeof fake.lab.loaded;
    expect(dryRun(fake.lab, {}).removed).toEqual(['web']);
    const mark = fake.events.mark();
    const report = await up(fake.lab);
    expect(report.removed).toEqual(['web']);
    expect(fake.events.since(mark)).toContain('stop web hard');
    expect(existsSync(root('web'))).toBe(false);
    expect(fake.state().machines.web).toBeUndefined();
  });
});

describe('lab up --idempotence', () => {
  it("takes a running vm down while it applies its DHCP server's stages again, and boots it once the server is back", async () => {
    await fake.cleanup();
    fake = await fakeLab({ machines: [...defaultLab.machines, { name: 'pc', kind: 'vm' }] });
    // No qemu in unit tests: the vm is this process, as far as lab's state can tell.
    vi.spyOn(fake.lab.vms, 'start').mockImplementation(async (name) => (fake.events.push(`start ${name}`), refOf(process.pid)!));
    vi.spyOn(fake.lab.vms, 'stop').mockImplementation(async (name) => void fake.events.push(`stop ${name}`));
    await up(fake.lab);
    expect(running('pc')).toBe(true);
    const mark = fake.events.mark();
    await checkIdempotence(fake.lab, { machines: ['gw'] });
    const power = fake.events.since(mark).filter((e) => /^(stop|start) (pc|gw)/.test(e));
    expect(power[0]).toBe('stop pc');
    expect(power.slice(-2)).toEqual(['start gw', 'start pc']);
    expect(running('pc')).toBe(true);
  });
});

describe('lab restore', () => {
  it('<stage>: swaps the roots of the machines that have it, boots them, then reboots the running machines that depend on them', async () => {
    await up(fake.lab);
    writeFileSync(path.join(root('gw'), 'etc', 'written-while-running'), 'x\n');
    const mark = fake.events.mark();
    const report = await restore(fake.lab, 'dns');
    expect(report.restored).toEqual([expect.objectContaining({ machine: 'gw', stage: 'dns', key: fake.keyOf('gw', 'dns'), current: true })]);
    expect(report.rebooted).toEqual(['web-silicon', 'web']);
    expect(report.leftAlone).toEqual(['web-silicon', 'web']);
    // The dependents go down first, cleanly; gw's root is swapped while it is stopped; they come back after it, in order.
    expect(fake.events.since(mark).filter((e) => /^(stop|start) /.test(e))).toEqual(['stop web-silicon clean', 'stop web clean', 'stop gw hard', 'start gw', 'start web-silicon', 'start web']);
    expect(fake.events.since(mark).indexOf('ready gw')).toBeLessThan(fake.events.since(mark).indexOf('start web-silicon'));
    expect(fake.events.of('copy', mark)).toEqual([`snapshots/gw/dns@${fake.keyOf('gw', 'dns')} -> machines/gw.incoming`]);
    expect(fake.events.of('remove', mark)).toEqual(['machines/gw.outgoing']);
    expect(existsSync(path.join(root('gw'), 'etc', 'written-while-running'))).toBe(false);
    expect(Object.keys(fake.marks(root('gw')))).toEqual(['dns']);
    expect(readdirSync(fake.lab.dirs.machinesDir).sort()).toEqual(['gw', 'web', 'web-silicon']);
    expect(fake.state().machines.gw).toMatchObject({ rootStage: 'dns', rootKey: fake.keyOf('gw', 'dns') });
    for (const machine of MACHINES) expect(running(machine)).toBe(true);
    expect(fake.events.of('step', mark)).toEqual([]);
  });

  it("<machine>@<stage>: lab status counts the stages after it as pending, not done, until lab up brings them back", async () => {
    await up(fake.lab);
    await restore(fake.lab, 'web-silicon@nginx');
    const restored = (await status(fake.lab)).machines.find((m) => m.name === 'web-silicon')!;
    expect([restored.rootStage, restored.stagesDone, restored.stagesPending]).toEqual(['nginx', ['system', 'nginx'], ['site']]);
    await up(fake.lab);
    const back = (await status(fake.lab)).machines.find((m) => m.name === 'web-silicon')!;
    expect([back.stagesDone, back.stagesPending]).toEqual([['system', 'nginx', 'site'], []]);
  });

  it('<machine>@<stage>: that machine alone goes back, and the next up brings its later stages back from their snapshots', async () => {
    await up(fake.lab);
    let mark = fake.events.mark();
    const report = await restore(fake.lab, 'gw@system');
    expect(report.restored.map((r) => `${r.machine}@${r.stage}`)).toEqual(['gw@system']);
    expect(report.rebooted).toEqual(['web-silicon', 'web']);
    expect(fake.events.of('start', mark)).toEqual(['gw', 'web-silicon', 'web']);
    expect(fake.marks(root('gw'))).toEqual({});
    expect(fake.state().machines.gw).toMatchObject({ rootStage: 'system', rootKey: fake.keyOf('gw', 'system') });

    mark = fake.events.mark();
    await up(fake.lab);
    expect(fake.events.of('step', mark)).toEqual([]);
    expect(fake.events.of('copy', mark)).toEqual([`snapshots/gw/dns@${fake.keyOf('gw', 'dns')} -> machines/gw`]);
    expect(fake.events.of('start', mark)).toEqual(['gw', 'web-silicon', 'web']);
    expect(Object.keys(fake.marks(root('gw')))).toEqual(['dns']);
  });
});

describe("a machine's power (scenarios' reboot, crash and start)", () => {
  it('crash kills the machine at once, its root left as it was and the state saying it is stopped; start boots it from that root', async () => {
    await up(fake.lab);
    writeFileSync(path.join(root('web'), 'half-written'), 'x');
    let mark = fake.events.mark();
    await power(fake.lab, 'web', 'crash');
    expect(fake.events.since(mark).filter((e) => /^(stop|start|copy|remove) /.test(e))).toEqual(['stop web hard']);
    expect(running('web')).toBe(false);
    expect(fake.state().machines.web?.process).toBeUndefined();
    expect(fake.state().machines.web).toMatchObject({ rootStage: 'proxy', rootKey: fake.keyOf('web', 'proxy') });
    expect(readFileSync(path.join(root('web'), 'half-written'), 'utf8')).toBe('x');
    for (const other of ['gw', 'web-silicon']) expect(running(other)).toBe(true);

    mark = fake.events.mark();
    await power(fake.lab, 'web', 'start');
    expect(fake.events.since(mark).filter((e) => /^(stop|start|ready|online|copy) /.test(e))).toEqual(['start web', 'ready web', 'online web']);
    expect(running('web')).toBe(true);
    expect(existsSync(path.join(root('web'), 'half-written'))).toBe(true);
    mark = fake.events.mark();
    await power(fake.lab, 'web', 'start'); // already running: left alone
    expect(fake.events.of('start', mark)).toEqual([]);
  });

  it('reboot stops the machine in order and boots it again, alone, under the lab lock', async () => {
    await up(fake.lab);
    const before = fake.state().machines.web!.process!;
    const mark = fake.events.mark();
    await power(fake.lab, 'web', 'reboot');
    expect(fake.events.since(mark).filter((e) => /^(stop|start|ready|online) /.test(e))).toEqual(['stop web clean', 'start web', 'ready web', 'online web']);
    expect(fake.state().machines.web!.process!.pid).not.toBe(before.pid);
    expect(running('web')).toBe(true);
    await expect(power(fake.lab, 'wbe', 'reboot')).rejects.toThrow("unknown machine 'wbe'");
  });
});

describe('lab up --idempotence', () => {
  it("applies a stage again with a log of its own, leaving the build's log as the build wrote it", async () => {
    await up(fake.lab);
    const buildLog = fake.lab.dirs.stageLog('gw', 'dns');
    writeFileSync(buildLog, 'what the build printed\n');
    const mark = fake.events.mark();
    await checkIdempotence(fake.lab, { machines: ['gw'] });
    expect(fake.events.of('step', mark)).toContain('gw@dns');
    expect(fake.buildSteps.options.get('gw@dns')?.logFile).toBe(fake.lab.dirs.stageLog('gw', 'dns.again'));
    expect(readFileSync(buildLog, 'utf8')).toBe('what the build printed\n');
  });
});

describe('lab checkpoint', () => {
  it('save keeps every root, the running machines frozen meanwhile; restore puts them back, running as they were, and up then builds nothing', async () => {
    await up(fake.lab);
    await stopMachine(fake.lab, fake.state(), 'web', { hard: false }); // stopped when the checkpoint is taken
    let mark = fake.events.mark();
    const checkpoint = await saveCheckpoint(fake.lab, 'before');
    expect(checkpoint).toMatchObject({
      name: 'before',
      frozen: true,
      machines: MACHINES.map((m) => ({ name: m, running: m !== 'web', rootStage: stagesOf(m).at(-1), rootKey: fake.keyOf(m, stagesOf(m).at(-1)!) })),
    });
    // Frozen before the first root is taken, thawed after the last.
    expect(fake.events.since(mark).filter((e) => /^(freeze|thaw|snapshot) /.test(e))).toEqual([
      'freeze 2',
      ...MACHINES.map((m) => `snapshot machines/${m} -> checkpoints/before.partial/${m}`),
      'thaw 2',
    ]);
    expect(readdirSync(fake.lab.dirs.checkpointsDir).sort()).toEqual(['before', 'before.json']);

    // The lab changes after it: gw back to an earlier stage, a file written in web-silicon.
    await restore(fake.lab, 'gw@system');
    writeFileSync(path.join(root('web-silicon'), 'etc', 'written-after'), 'x\n');
    mark = fake.events.mark();
    const report = await restore(fake.lab, 'before');
    expect(report.checkpoint).toBe('before');
    expect(report.restored.map((r) => [r.machine, r.stage, r.bootMs !== undefined])).toEqual([['gw', 'before', true], ['web-silicon', 'before', true], ['web', 'before', false]]);
    expect(fake.events.of('start', mark)).toEqual(['gw', 'web-silicon']);
    expect([running('gw'), running('web-silicon'), running('web')]).toEqual([true, true, false]);
    expect(Object.keys(fake.marks(root('gw')))).toEqual(['dns']);
    expect(existsSync(path.join(root('web-silicon'), 'etc', 'written-after'))).toBe(false);
    for (const machine of MACHINES) expect(fake.state().machines[machine]).toMatchObject({ rootStage: 'checkpoint:before', rootKey: 'checkpoint:before' });

    // The roots' origin is no stage: up puts each back from its last snapshot, building nothing.
    mark = fake.events.mark();
    await up(fake.lab);
    expect(fake.events.of('step', mark)).toEqual([]);
    expect(fake.events.of('copy', mark).sort()).toEqual(MACHINES.map((m) => `snapshots/${m}/${stagesOf(m).at(-1)}@${fake.keyOf(m, stagesOf(m).at(-1)!)} -> machines/${m}`).sort());
    expect(fake.events.of('start', mark)).toEqual(['gw', 'web-silicon', 'web']);
  });
});

describe("a bisect's way back", () => {
  it('is left while the bisect that made it lives, and put back and deleted by the next command once it is gone, even if its pid is reused', async () => {
    await up(fake.lab);
    const name = `lab-bisect-${process.pid}`;
    const checkpoint = await saveCheckpoint(fake.lab, name, { internal: true });
    expect(checkpoint.owner?.pid).toBe(process.pid);
    await restore(fake.lab, 'gw@system');
    await finishAbandonedBisects(fake.lab);
    expect(listCheckpoints(fake.lab).map((c) => c.name)).toEqual([name]);

    // The same pid, another process (its start time differs): the bisect is gone.
    const meta = path.join(fake.lab.dirs.checkpointsDir, `${name}.json`);
    writeFileSync(meta, JSON.stringify({ ...checkpoint, owner: { ...checkpoint.owner, startTime: '1' } }));
    const mark = fake.events.mark();
    await finishAbandonedBisects(fake.lab);
    expect(listCheckpoints(fake.lab)).toEqual([]);
    expect(fake.events.of('start', mark)).toContain('gw');
    expect(Object.keys(fake.marks(root('gw')))).toEqual(['dns']);
  }, 30_000); // a checkpoint, two restores: seconds on a busy machine
});

describe('lab checkpoint, when it cannot finish', () => {
  it('records what it freezes while they are frozen, and nothing once thawed', async () => {
    await up(fake.lab);
    const seen: boolean[] = [];
    host.record = (event) => {
      if (/^(freeze|thaw) /.test(event)) seen.push(existsSync(fake.lab.dirs.frozenFile));
    };
    await saveCheckpoint(fake.lab, 'before');
    expect(seen).toEqual([true, true]); // written before freezing, removed only after thawing
    expect(existsSync(fake.lab.dirs.frozenFile)).toBe(false);
  });

  it('on a full pool, says the pool is full and leaves no checkpoint half made', async () => {
    await up(fake.lab);
    vi.spyOn(fake.storage, 'snapshot').mockRejectedValueOnce(new Error('btrfs subvolume snapshot: ERROR: cannot snapshot: No space left on device'));
    const failed = await saveCheckpoint(fake.lab, 'full').catch((error: Error) => error);
    expect(failed).toBeInstanceOf(HostError);
    expect((failed as HostError).message).toMatch(/^the pool is full/);
    expect((failed as HostError).hint).toContain('storage.poolSize');
    expect(readdirSync(fake.lab.dirs.checkpointsDir)).toEqual([]);
    expect(existsSync(fake.lab.dirs.frozenFile)).toBe(false);
  });

  it('metadata that never got written whole is repaired by the next command', async () => {
    await up(fake.lab);
    await saveCheckpoint(fake.lab, 'torn');
    writeFileSync(path.join(fake.lab.dirs.checkpointsDir, 'torn.json'), ''); // as a full pool left it, before metadata went through a rename
    writeFileSync(path.join(fake.lab.dirs.checkpointsDir, 'other.json.partial'), '');
    expect(interruptedWork(fake.lab).map((w) => path.basename(w.what.split(':')[0]!)).sort()).toEqual(['other.json.partial', 'torn', 'torn.json']);
    await saveCheckpoint(fake.lab, 'next'); // any command of the lab repairs first
    expect(readdirSync(fake.lab.dirs.checkpointsDir).sort()).toEqual(['next', 'next.json']);
  });
});

describe('writable binds', () => {
  it('are nosuid,nodev on the host from the first build step that binds them until the command that stops their machine ends, kept through restores, also when a build fails', async () => {
    const source = mkdtempSync(path.join(tmpdir(), 'lab-bind-'));
    const readonly = mkdtempSync(path.join(tmpdir(), 'lab-bind-ro-'));
    await fake.cleanup();
    const binds = [{ source, target: '/srv/data', readonly: false }, { source: readonly, target: '/srv/ro' }];
    fake = await fakeLab({ machines: defaultLab.machines.map((m) => (m.name === 'gw' ? { ...m, binds } : m)) });
    const mounted = () => fake.mountTable.mounts().filter((m) => m.mountPoint === source).map((m) => m.options.join(','));
    const { events } = fake;
    await up(fake.lab);
    expect(events.of('host')).toEqual([`mount --rbind ${source} ${source}`, `mount -o remount,bind,rw,relatime,nosuid,nodev ${source}`]);
    expect(events.at(`host mount -o remount,bind,rw,relatime,nosuid,nodev ${source}`)).toBeLessThan(events.at('step gw@system'));
    expect(mounted()).toEqual(['rw,relatime,nosuid,nodev']);

    // A restore stops gw and starts it again: the source stays bound, and is not walked.
    let mark = events.mark();
    await restore(fake.lab, 'gw@system');
    expect(events.since(mark).filter((e) => e.startsWith('disarm') || e.startsWith('host'))).toEqual([]);
    expect(mounted()).toEqual(['rw,relatime,nosuid,nodev']);

    // A machine stopped for good (lab down): what it may have left in the source is disarmed before the host sees it without nosuid,nodev.
    mark = events.mark();
    await down(fake.lab);
    expect(events.since(mark).filter((e) => !e.startsWith('stop ') || e === 'stop gw clean')).toEqual(['stop gw clean', `disarm ${source}`, `host umount --lazy ${source}`]);
    expect(mounted()).toEqual([]);
    await up(fake.lab);

    // A failed build: gw does not run, and what its build steps held is let go of when lab up ends.
    await fake.writeStage('gw', 'dns', '#!/bin/sh\necho dns, changed\n');
    fake.buildSteps.failing.add('gw@dns');
    mark = events.mark();
    await expect(up(fake.lab)).rejects.toBeInstanceOf(StageError);
    expect(events.of('host', mark)).toEqual([`umount --lazy ${source}`]); // bound still from the up before, through the build
    const failedUp = events.since(mark).filter((e) => ['step gw@dns', `disarm ${source}`, `host umount --lazy ${source}`].includes(e));
    expect(failedUp).toEqual(['step gw@dns', `disarm ${source}`, `host umount --lazy ${source}`]);
    expect(mounted()).toEqual([]);

    fake.buildSteps.failing.clear();
    await up(fake.lab);
    expect(mounted()).toHaveLength(1);
    await down(fake.lab);
    expect(mounted()).toEqual([]);
    await up(fake.lab);
    await destroy(fake.lab);
    expect(mounted()).toEqual([]);
  }, 30_000); // seven lab commands on the fakes: seconds on a busy machine
});

// Last in this file: lab's interruption is for the rest of the process (lab exits after it), and
// lib/interrupt.ts has no way back to 'running'.
describe('an interrupted lab up', () => {
  it('leaves no snapshot of the stage being built, and the next up builds that stage again', async () => {
    // web@proxy is interrupted once gw and web-silicon are through (up), so that what they do is known.
    const ended = new Set<string>();
    let othersEnded!: () => void;
    fake.buildSteps.interruptAt('web@proxy', new Promise<void>((resolve) => (othersEnded = resolve)));
    const onProgress = (event: UpEvent) => {
      if (event.kind !== 'machine-end') return;
      ended.add(event.machine);
      if (ended.has('gw') && ended.has('web-silicon')) othersEnded();
    };
    const error = await up(fake.lab, { onProgress }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StageError);
    expect((error as StageError).message).toContain('interrupted');
    expect(fake.snapshotsOf('web')).toEqual([`haproxy@${fake.keyOf('web', 'haproxy')}`, `system@${fake.keyOf('web', 'system')}`]);
    expect(fake.taken().filter((s) => s.startsWith('web@'))).toEqual(['web@system', 'web@haproxy']);
    expect(fake.state().machines.web!.rootKey).toBeUndefined();
    expect(fake.events.of('start')).toEqual(['gw', 'web-silicon']);
    expect([running('gw'), running('web-silicon'), running('web')]).toEqual([true, true, false]);

    // lab runs the cleanups and exits; the next up (where nothing is refused any more) resumes at the interrupted stage.
    await runInterruptCleanups();
    const mark = fake.events.mark();
    await up(fake.lab);
    expect(fake.events.of('step', mark)).toEqual(['web@proxy']);
    expect(fake.events.of('copy', mark)).toEqual([`snapshots/web/haproxy@${fake.keyOf('web', 'haproxy')} -> machines/web`]);
    expect(fake.events.of('start', mark)).toEqual(['web']);
    expect(fake.marks(root('web')).proxy).toBe('started\n#!/bin/sh\necho web proxy\n');
  });
});

describe('diskless machines', () => {
  const ROOM = ['r01p01', 'r01p02', 'r01p03'];
  const NFSROOT = 'export/nfsroot_ro';
  /** What rhfs's nfsroot stage makes: a root with the mount points a read-only boot needs, but `without` one. */
  const nfsroot = (without?: string) => (rhfsRoot: string) => {
    const dir = path.join(rhfsRoot, NFSROOT);
    for (const sub of ['etc/systemd/network', 'home', 'var/log', 'var/tmp', 'var/spool/mail', 'var/lib/isolate', 'var/lib/lightdm']) if (sub !== without) mkdirSync(path.join(dir, sub), { recursive: true });
    for (const file of ['etc/hostname', 'etc/machine-id', 'etc/hosts', 'etc/resolv.conf']) writeFileSync(path.join(dir, file), '');
  };

  beforeEach(async () => {
    await fake.cleanup();
    fake = await fakeLab({
      machines: [
        { name: 'gw', address: '10.224.0.254', stages: ['dns'] },
        { name: 'rhfs', address: '10.224.0.20', stages: ['nfsroot', 'export'] },
      ],
      rooms: [{ machines: 3, root: { machine: 'rhfs', path: `/${NFSROOT}` } }],
    });
    fake.buildSteps.effects.set('rhfs@nfsroot', nfsroot());
  });

  const startsOf = (mark = 0) => fake.events.of('start', mark);
  const at = (event: string, mark: number) => fake.events.since(mark).indexOf(event);

  it("build nothing and boot rhfs's directory read-only after rhfs and gw, their identity bound from the lab's state", async () => {
    const report = await up(fake.lab);
    expect(fake.events.of('step').filter((s) => s.startsWith('r01'))).toEqual([]);
    expect(readdirSync(fake.lab.dirs.machinesDir).sort()).toEqual(['gw', 'rhfs']);
    for (const machine of ROOM) {
      expect(at(`start ${machine}`, 0)).toBeGreaterThan(at('online rhfs', 0));
      expect(at(`start ${machine}`, 0)).toBeGreaterThan(at('online gw', 0));
      expect(running(machine)).toBe(true);
    }
    const identity = fake.lab.dirs.identityDir('r01p01');
    const machineId = identityFiles(fake.lab.loaded.machines.find((m) => m.name === 'r01p01')!.view).find((f) => f.path === '/etc/machine-id')!.content.trim();
    expect(fake.events.of('diskless').find((e) => e.startsWith('r01p01 '))).toBe(
      [
        `r01p01 ${path.join(root('rhfs'), NFSROOT)} --read-only`,
        ...['/home', '/var/log', '/var/tmp', '/var/spool/mail', '/var/lib/isolate', '/var/lib/lightdm'].map((dir) => `--tmpfs=${dir}`),
        `--uuid=${machineId}`,
        ...['/etc/hostname', '/etc/hosts', '/etc/systemd/network', '/etc/resolv.conf', '/run/systemd/journald.conf.d/lab-diskless.conf'].map((target) => `--bind-ro=${identity}${target}:${target}:norbind`),
      ].join(' '),
    );
    expect(readFileSync(path.join(identity, 'etc', 'hostname'), 'utf8')).toBe('r01p01\n');
    expect(readdirSync(path.join(identity, 'etc', 'systemd', 'network'))).toEqual(['10-lab-host0.network']);
    expect(readdirSync(path.join(identity, 'etc')).sort()).toEqual(['hostname', 'hosts', 'resolv.conf', 'systemd']);
    // Its journal, in memory, limited (journald's own first file there takes 8 MiB).
    expect(readFileSync(path.join(identity, 'run/systemd/journald.conf.d/lab-diskless.conf'), 'utf8')).toContain('RuntimeMaxFileSize=1M');
    // Nothing of theirs in the root they share.
    expect(readFileSync(path.join(root('rhfs'), NFSROOT, 'etc', 'hostname'), 'utf8')).toBe('');
    expect(report.machines.filter((m) => ROOM.includes(m.name)).map((m) => [m.name, m.booted, m.stages])).toEqual(ROOM.map((m) => [m, true, []]));
    const { status } = await import('../../lib/engine/status.js');
    expect((await status(fake.lab)).machines.find((m) => m.name === 'r01p01')).toMatchObject({ state: 'running', rootStage: `rhfs:/${NFSROOT}`, stagesDone: [], snapshots: [] });

    const mark = fake.events.mark();
    await up(fake.lab);
    expect(startsOf(mark)).toEqual([]);
  });

  it("go down before a rebuilt stage of rhfs replaces its root, and boot again on the new root once rhfs is up; gw is left running", async () => {
    await up(fake.lab);
    await fake.writeStage('rhfs', 'export', '#!/bin/sh\necho exported otherwise\n');
    const mark = fake.events.mark();
    await up(fake.lab);
    const swapped = at(`copy snapshots/rhfs/nfsroot@${fake.keyOf('rhfs', 'nfsroot')} -> machines/rhfs`, mark);
    expect(swapped).toBeGreaterThan(-1);
    for (const machine of ROOM) {
      expect(at(`stop ${machine} hard`, mark)).toBeGreaterThan(-1);
      expect(at(`stop ${machine} hard`, mark)).toBeLessThan(swapped);
      expect(at(`start ${machine}`, mark)).toBeGreaterThan(at('online rhfs', mark));
    }
    expect(startsOf(mark).sort()).toEqual(['rhfs', ...ROOM].sort());
  });

  it('come with rhfs when lab up names rhfs alone', async () => {
    await up(fake.lab);
    await fake.writeStage('rhfs', 'export', '#!/bin/sh\necho exported otherwise\n');
    const mark = fake.events.mark();
    await up(fake.lab, { plan: { only: ['rhfs'] } });
    expect(startsOf(mark).sort()).toEqual(['rhfs', ...ROOM].sort());
  });

  it('reboot on the restored root of rhfs; stay down, saying why, when it has no directory for them', async () => {
    await up(fake.lab);
    let mark = fake.events.mark();
    const report = await restore(fake.lab, 'rhfs@export');
    expect(report.rebooted.sort()).toEqual(ROOM);
    expect(report.leftStopped).toEqual([]);
    for (const machine of ROOM) {
      expect(at(`stop ${machine} clean`, mark)).toBeLessThan(at('stop rhfs hard', mark));
      expect(at(`start ${machine}`, mark)).toBeGreaterThan(at('ready rhfs', mark));
    }

    mark = fake.events.mark();
    const early = await restore(fake.lab, 'rhfs@system');
    expect(early.rebooted).toEqual([]);
    expect(early.leftStopped.map((l) => l.machine).sort()).toEqual(ROOM);
    expect(early.leftStopped[0]!.why).toBe(`rhfs@system: rooms.0.root.path: /${NFSROOT} is not in rhfs's root (its stages make it)`);
    expect(startsOf(mark)).toEqual(['rhfs']);
    for (const machine of ROOM) expect(running(machine)).toBe(false);
    // lab up brings rhfs's stages back from their snapshots, and the room with them.
    mark = fake.events.mark();
    await up(fake.lab);
    expect(fake.events.of('step', mark)).toEqual([]);
    expect(startsOf(mark).sort()).toEqual(['rhfs', ...ROOM].sort());
  });

  it('refuse to boot, naming the field, a root without a mount point, or whose path leaves rhfs through a symlink: rhfs does not boot either', async () => {
    fake.buildSteps.effects.set('rhfs@nfsroot', nfsroot('var/lib/isolate'));
    const missing = await up(fake.lab).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(UsageError);
    expect((missing as UsageError).message).toBe(`rooms.0.tmpfs.4: rhfs's /${NFSROOT} has no directory /var/lib/isolate: a read-only root needs its mount points (make it in the stage that builds /${NFSROOT})`);
    expect(startsOf()).toEqual(['gw']);

    await fake.writeStage('rhfs', 'nfsroot', '#!/bin/sh\necho a link out\n');
    fake.buildSteps.effects.set('rhfs@nfsroot', (rhfsRoot) => {
      mkdirSync(path.join(rhfsRoot, 'export'), { recursive: true });
      symlinkSync(fake.dir, path.join(rhfsRoot, NFSROOT));
    });
    const out = await up(fake.lab).catch((e: unknown) => e);
    expect(out).toBeInstanceOf(UsageError);
    expect((out as UsageError).message).toBe(`rooms.0.root.path: /${NFSROOT} leaves rhfs's root through a symlink (to ${realpathSync(fake.dir)} on the host)`);
    expect(startsOf()).toEqual(['gw']);
  });
});

describe('build slots', () => {
  it('build at most two stages a core at once', async () => {
    const room = Array.from({ length: 9 }, (_, i) => ({ name: `pc${i}`, address: 'dhcp', stages: ['site'] }));
    await fake.cleanup();
    fake = await fakeLab({ machines: [{ name: 'gw', address: '10.224.0.254', stages: ['dns'] }, ...room] });
    const slots = buildConcurrency(availableParallelism());
    let release!: () => void;
    fake.buildSteps.hold = new Promise<void>((resolve) => (release = resolve));
    const upping = up(fake.lab);
    await vi.waitFor(() => expect(fake.buildSteps.running).toBe(slots), { timeout: 5000 });
    release();
    await upping;
    expect(fake.buildSteps.mostAtOnce).toBe(slots);
    const steps = fake.events.of('step').filter((s) => !s.endsWith('@system'));
    expect([...steps].sort()).toEqual(['gw@dns', ...room.map((m) => `${m.name}@site`)].sort());
  });
});
