import { describe, expect, it } from 'vitest';
import { defaultLab } from '../../lib/config/default.js';
import { disklessOn, machineField, roomMachineNames, SADM_TMPFS, tmpfsOf } from '../../lib/config/diskless.js';
import type { LabConfigInput } from '../../lib/config/schema.js';
import { machineDependencies, topologyOf } from '../../lib/config/topology.js';
import { validateConfig } from '../../lib/config/validate.js';
import { UsageError } from '../../lib/errors.js';
import { inventoryOf } from '../../lib/controller/inventory.js';
import { rolesOf } from '../../lib/report/graph.js';
import { disklessInit, disklessOptions } from '../../lib/runtime/nspawn-process.js';
import { type MachineSpec, planLab, type StageSpec } from '../../lib/plan/plan.js';
import { identityFiles } from '../../lib/stages/system.js';
import { labView } from '../../lib/stages/load.js';

const ROOT = { machine: 'rhfs', path: '/export/nfsroot_ro' };
/** gw (DNS, DHCP), rhfs (its root holds the contestants'), and what the test adds. */
const lab = (machines: LabConfigInput['machines'] = [], more: Partial<LabConfigInput> = {}): LabConfigInput => ({
  ...defaultLab,
  machines: [{ name: 'gw', address: '10.224.0.254', stages: ['dns'] }, { name: 'rhfs', address: '10.224.0.20', stages: ['nfsroot'] }, ...machines],
  ...more,
});

function invalid(input: unknown): string {
  try {
    validateConfig(input);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).exitCode).toBe(2);
    return (error as UsageError).message;
  }
  throw new Error('expected the config to be rejected');
}

describe('a diskless machine in the config', () => {
  it("boots a directory of another machine's root, with SADM's tmpfs list unless it says otherwise, after that machine and gw", () => {
    const config = validateConfig(lab([{ name: 'pc1', kind: 'diskless', root: ROOT }, { name: 'pc2', kind: 'diskless', root: ROOT, tmpfs: ['/home'] }, { name: 'pc3', kind: 'diskless', root: ROOT, volatile: 'overlay' }]));
    const [pc1, pc2, pc3] = config.machines.slice(2);
    expect(tmpfsOf(pc1!)).toEqual(SADM_TMPFS);
    expect(SADM_TMPFS).toEqual(['/home', '/var/log', '/var/tmp', '/var/spool/mail', '/var/lib/isolate', '/var/lib/lightdm']);
    expect(tmpfsOf(pc2!)).toEqual(['/home']);
    expect(tmpfsOf(pc3!)).toBeUndefined();
    expect(machineDependencies(config, pc1!)).toEqual(['gw', 'rhfs']);
    expect(disklessOn(config, 'rhfs')).toEqual(['pc1', 'pc2', 'pc3']);
    expect(disklessOn(config, 'gw')).toEqual([]);
    // A card like any container's: a stable locally administered MAC, a DHCP lease from gw.
    const topology = topologyOf(config);
    expect(topology.machines.find((m) => m.name === 'pc1')).toMatchObject({ kind: 'diskless', root: ROOT, interfaces: [{ name: 'host0', address: 'dhcp', mac: expect.stringMatching(/^02:/) }] });
    // Not reachable by the controller: its root is rhfs's directory, which lab's ssh stage does not build.
    const inventory = inventoryOf(config, topology);
    expect(inventory.hosts.find((h) => h.name === 'pc1')).toMatchObject({ kind: 'diskless', reach: undefined });
    expect(rolesOf(topology, topology.machines.find((m) => m.name === 'pc1')!)).toEqual(['diskless (rhfs:/export/nfsroot_ro)']);
  });

  it('refuses, naming the field, a root that is unknown, diskless itself or a vm, a path that is not absolute or has ..', () => {
    const diskless = (extra: object) => lab([{ name: 'pc1', kind: 'diskless', root: ROOT, ...extra }]);
    expect(invalid(diskless({ root: undefined }))).toBe("invalid config: machines.2.root: a diskless machine boots a directory of another machine: give root: { machine, path }");
    expect(invalid(diskless({ root: { machine: 'nfs', path: '/x' } }))).toBe("invalid config: machines.2.root.machine: unknown machine 'nfs' (machines: gw, rhfs, pc1)");
    expect(invalid(lab([{ name: 'pc1', kind: 'diskless', root: ROOT }, { name: 'pc2', kind: 'diskless', root: { machine: 'pc1', path: '/' } }]))).toBe(
      "invalid config: machines.3.root.machine: 'pc1' is diskless itself: a root is a directory of a machine lab builds in stages",
    );
    expect(invalid(lab([{ name: 'vm1', kind: 'vm' }, { name: 'pc1', kind: 'diskless', root: { machine: 'vm1', path: '/' } }]))).toContain("machines.3.root.machine: 'vm1' is a vm");
    expect(invalid(diskless({ root: { machine: 'rhfs', path: 'export/nfsroot_ro' } }))).toBe("invalid config: machines.2.root.path: an absolute path in rhfs's root");
    expect(invalid(diskless({ root: { machine: 'rhfs', path: '/export/../etc' } }))).toBe("invalid config: machines.2.root.path: '..' is not allowed in a root path (/export/../etc)");
    expect(invalid(diskless({ root: { machine: 'rhfs', path: '/export/nfsroot_ro/' } }))).toBe('invalid config: machines.2.root.path: write it as /export/nfsroot_ro');
  });

  it('refuses stages, binds, tmpfs paths it cannot have, both tmpfs and an overlay, and its settings on another kind', () => {
    const diskless = (extra: object) => lab([{ name: 'pc1', kind: 'diskless', root: ROOT, ...extra }]);
    expect(invalid(diskless({ stages: ['desktop'] }))).toBe("invalid config: machines.2.stages: a diskless machine has no stages: it boots rhfs's /export/nfsroot_ro, which rhfs's stages build");
    expect(invalid(diskless({ binds: [{ source: '.', target: '/srv' }] }))).toBe("invalid config: machines.2.binds: a diskless machine has no binds: it boots rhfs's /export/nfsroot_ro, read-only and shared");
    expect(invalid(diskless({ tmpfs: ['/home', 'tmp'] }))).toBe('invalid config: machines.2.tmpfs.1: an absolute path inside the machine');
    expect(invalid(diskless({ tmpfs: ['/run/user'] }))).toContain('machines.2.tmpfs.0: /run/user is under /run');
    expect(invalid(diskless({ tmpfs: ['/'] }))).toBe('invalid config: machines.2.tmpfs.0: a tmpfs over the whole root: use volatile: overlay');
    expect(invalid(diskless({ tmpfs: ['/home', '/home'] }))).toBe("invalid config: machines.2.tmpfs.1: '/home' is listed twice");
    expect(invalid(diskless({ tmpfs: ['/home'], volatile: 'overlay' }))).toBe('invalid config: machines.2.volatile: either tmpfs or volatile: overlay (an overlay makes the whole root writable)');
    expect(invalid(lab([{ name: 'web', root: ROOT }]))).toBe('invalid config: machines.2.root: only for a machine of kind diskless');
    expect(invalid(lab([{ name: 'web', tmpfs: ['/home'] }]))).toBe('invalid config: machines.2.tmpfs: only for a machine of kind diskless');
    expect(invalid(lab([{ name: 'pc1', kind: 'diskless', root: ROOT }], { runtime: 'machinectl', network: { mode: 'host' } }))).toContain('runtime machinectl: diskless machines need runtime nspawn');
  });

  it('takes no room in the pool: only machines with roots of their own count', () => {
    const many = Array.from({ length: 40 }, (_, i) => ({ name: `pc${i}`, kind: 'diskless' as const, root: ROOT }));
    expect(() => validateConfig(lab(many, { storage: { poolSize: '600M' } }))).not.toThrow();
  });
});

describe('rooms', () => {
  it('name their machines as SADM does, r<row>p<place>, perRow places a row from firstRow on', () => {
    expect(roomMachineNames({ machines: 12, perRow: 10, firstRow: 1 })).toEqual(['r01p01', 'r01p02', 'r01p03', 'r01p04', 'r01p05', 'r01p06', 'r01p07', 'r01p08', 'r01p09', 'r01p10', 'r02p01', 'r02p02']);
    expect(roomMachineNames({ machines: 3, perRow: 2, firstRow: 0 })).toEqual(['r00p01', 'r00p02', 'r01p01']);
  });

  it('add diskless machines, one number making the room, named by the room in errors', () => {
    const config = validateConfig(lab([], { rooms: [{ machines: 20, root: ROOT, groups: ['contestants'] }] }));
    const room = config.machines.slice(2);
    expect(room.map((m) => m.name)).toEqual(roomMachineNames({ machines: 20, perRow: 10, firstRow: 1 }));
    expect(room[0]).toMatchObject({ name: 'r01p01', kind: 'diskless', root: ROOT, groups: ['contestants'], stages: [], address: 'dhcp' });
    expect(machineField(config, 'r02p05')).toBe('rooms.0');
    expect(machineField(config, 'rhfs')).toBe('machines.1');
    // On a network of several: the room's card is there.
    const sadm = validateConfig({
      ...defaultLab,
      zone: { domain: 'prolo', dnsMachine: 'gw' },
      networks: [{ name: 'servers', subnet: '192.168.1.0/24', router: 'gw' }, { name: 'users', subnet: '192.168.0.0/24', router: 'gw' }],
      machines: [
        { name: 'gw', interfaces: [{ network: 'servers', address: '192.168.1.254' }, { network: 'users', address: '192.168.0.254' }], stages: ['dns'] },
        { name: 'rhfs', interfaces: [{ network: 'servers', address: '192.168.1.20' }], stages: ['nfsroot'] },
      ],
      rooms: [{ machines: 2, network: 'users', root: ROOT, volatile: 'overlay' }],
    });
    expect(sadm.machines.slice(2).map((m) => [m.name, m.interfaces, m.volatile])).toEqual([
      ['r01p01', [{ network: 'users', address: 'dhcp' }], 'overlay'],
      ['r01p02', [{ network: 'users', address: 'dhcp' }], 'overlay'],
    ]);
  });

  it('refuse, naming the room, what a room gets wrong', () => {
    expect(invalid(lab([], { rooms: [{ machines: 20, root: { machine: 'nfs', path: '/x' } }] }))).toBe("invalid config: rooms.0.root.machine: unknown machine 'nfs' (machines: gw, rhfs)");
    expect(invalid(lab([], { rooms: [{ machines: 1000, root: ROOT }] }))).toContain('rooms.0.machines: 1000 machines, 10 a row from row 1, go on to row 100 (rows have two digits)');
    expect(invalid(lab([{ name: 'r01p03', address: '10.224.0.30' }], { rooms: [{ machines: 5, root: ROOT }] }))).toBe('invalid config: rooms.0: its machine r01p03 is named by machines.2 already');
    expect(invalid(lab([], { rooms: [{ machines: 5, root: ROOT }, { machines: 5, root: ROOT }] }))).toBe('invalid config: rooms.1: its machine r01p01 is named by rooms.0 already');
    expect(invalid(lab([], { rooms: [{ machines: 5, root: ROOT, network: 'users' }] }))).toBe('invalid config: rooms.0.network: the lab has one network (the zone): leave network out');
    expect(invalid(lab([], { rooms: [{ machines: 5, root: ROOT, dependsOn: ['web'] }] }))).toBe("invalid config: rooms.0.dependsOn: unknown machine 'web' (machines: gw, rhfs)");
    expect(invalid(lab([], { rooms: [{ machines: 5, root: ROOT, perRow: 100 }] }))).toContain('rooms.0.perRow: at most 99');
  });
});

describe('the plan of diskless machines', () => {
  const stage = (machine: string, name: string, definitionHash = `${machine}/${name}`): StageSpec => ({ machine, name, packages: [], definitionHash });
  const spec = (name: string, stages: string[], dependsOn: string[] = []): MachineSpec => ({ name, dependsOn, stages: ['system', ...stages].map((s) => stage(name, s)) });
  const machines: MachineSpec[] = [
    { name: 'r01p01', dependsOn: ['gw', 'rhfs'], stages: [], bootsFrom: ROOT },
    spec('rhfs', ['nfsroot', 'export'], ['gw']),
    spec('gw', ['dns']),
  ];
  const plan = (options = {}, hasSnapshot = () => false, controller = [{ name: 'play', definitionHash: 'p' }]) => planLab({ machines, baseKey: 'base', hasSnapshot, controller, options });

  it('has no stages, and comes after its root machine and gw', () => {
    const planned = plan();
    expect(planned.machines.map((m) => m.name)).toEqual(['gw', 'rhfs', 'r01p01']);
    expect(planned.machines[2]).toEqual({ name: 'r01p01', dependsOn: ['gw', 'rhfs'], stages: [], bootsFrom: ROOT });
  });

  it('takes no part in the controller stages: they are cached once the machines with roots have their snapshots', () => {
    expect(plan({}, () => true).controller.map((s) => s.action)).toEqual(['cached']);
    expect(plan({}, () => true).machines.find((m) => m.name === 'rhfs')!.resumeFrom).toEqual({ stage: 'play', key: expect.any(String) });
    expect(plan({}, () => true).machines.find((m) => m.name === 'r01p01')!.resumeFrom).toBeUndefined();
  });

  it('is left out when --until stops its root machine before its last stage, and is kept otherwise', () => {
    expect(plan({ until: { machine: 'rhfs', stage: 'nfsroot' } }).machines.map((m) => m.name)).toEqual(['gw', 'rhfs']);
    expect(plan({ until: { stage: 'system' } }).machines.map((m) => m.name)).toEqual(['gw', 'rhfs']);
    expect(plan({ until: { machine: 'rhfs', stage: 'export' } }).machines.map((m) => m.name)).toEqual(['gw', 'rhfs', 'r01p01']);
    expect(plan({ until: { machine: 'gw', stage: 'system' } }).machines.map((m) => m.name)).toEqual(['gw', 'rhfs', 'r01p01']);
  });
});

describe("a diskless machine's boot", () => {
  it("gets its own identity, as the system stage writes it into a root of its own, bound over the shared root's", () => {
    const config = validateConfig(lab([{ name: 'pc1', kind: 'diskless', root: ROOT }]));
    const files = identityFiles(labView(config, config.machines[2]!));
    expect(files.map((f) => f.path)).toEqual(['/etc/hostname', '/etc/machine-id', '/etc/hosts', '/etc/systemd/network/10-lab-host0.network', '/etc/resolv.conf']);
    expect(files[0]!.content).toBe('pc1\n');
    expect(files[1]!.content).toMatch(/^[0-9a-f]{32}\n$/);
    expect(files[3]!.content).toContain(`MACAddress=${topologyOf(config).machines[2]!.interfaces[0]!.mac}`);
    expect(files[4]!.content).toBe('nameserver 10.224.0.254\nsearch prolo\n');
  });

  it("is read-only with a tmpfs over each path, or a volatile overlay; its machine-id the UUID and on its init's command line; its identity bound read-only", () => {
    const identity = [{ source: '/state/diskless/pc1/etc/hostname', target: '/etc/hostname', readonly: true }];
    expect(disklessOptions({ machineId: 'ab'.repeat(16), identity, tmpfs: ['/home', '/var/a:b'] })).toEqual([
      '--read-only',
      '--tmpfs=/home',
      '--tmpfs=/var/a\\:b',
      `--uuid=${'ab'.repeat(16)}`,
      '--bind-ro=/state/diskless/pc1/etc/hostname:/etc/hostname:norbind',
    ]);
    expect(disklessOptions({ machineId: 'ab'.repeat(16), identity: [] })).toEqual(['--volatile=overlay', `--uuid=${'ab'.repeat(16)}`]);
    // The machine-id on its init's command line: before any file of the shared root.
    expect(disklessInit({ machineId: 'ab'.repeat(16), identity: [] })).toEqual([`systemd.machine_id=${'ab'.repeat(16)}`]);
  });
});
