import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultLab } from '../../lib/config/default.js';
import { loadConfig } from '../../lib/config/load.js';
import { interfaceMac, topologyOf } from '../../lib/config/topology.js';
import { validateConfig } from '../../lib/config/validate.js';
import { probeImage } from '../../lib/vm/accelerator.js';
import { cleanConsole } from '../../lib/vm/console.js';
import { QemuVms, qemuArgv, type VmSpec } from '../../lib/vm/qemu.js';
import { diskImageProblem } from '../../lib/vm/disk.js';
import { run } from '../../lib/exec.js';
import { findCommand } from '../../lib/host/prereq.js';
import { netbootDnsmasq } from '../../stages/gw/netboot.js';
import { dnsmasqSettings } from '../../stages/gw/dns.js';
import { labView, loadLab } from '../../lib/stages/load.js';
import { builtinFixturesDir, builtinStagesDir, packageRoot } from '../../lib/paths.js';

const spec: VmSpec = {
  guestName: 'lab-pc',
  memoryMiB: 256,
  cpus: 2,
  boot: 'network',
  interfaces: [{ hostLink: 'vl0123456789a', mac: '52:54:00:aa:bb:cc' }],
  accelerator: 'kvm',
  consoleSocket: '/var/lib/lab/lab/vm/pc.console',
  consoleLog: '/var/lib/lab/lab/logs/pc/console.log',
};

describe('qemu argv', () => {
  it("boots from the network with KVM, the console (the firmware's and iPXE's too) on a socket and in the log, a card per tap; net_admin and dac_read_search alone, under seccomp", () => {
    expect(qemuArgv(spec)).toEqual([
      expect.stringMatching(/\/setpriv$/), '--inh-caps=-all,+net_admin,+dac_read_search', '--bounding-set=-all,+net_admin,+dac_read_search', '--no-new-privs', '--',
      'qemu-system-x86_64', '-name', 'guest=lab-pc,process=lab-pc',
      '-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
      '-nodefaults', '-display', 'none', '-no-user-config', '-machine', 'graphics=off',
      '-accel', 'kvm', '-cpu', 'host,-arch-capabilities', '-m', '256', '-smp', '2',
      '-chardev', 'socket,id=console,path=/var/lib/lab/lab/vm/pc.console,server=on,wait=off,logfile=/var/lib/lab/lab/logs/pc/console.log,logappend=off',
      '-serial', 'chardev:console',
      '-netdev', 'tap,id=net0,ifname=vl0123456789a,script=no,downscript=no', '-device', 'e1000,netdev=net0,mac=52:54:00:aa:bb:cc',
      '-boot', 'order=n',
    ]);
  });

  it('emulates in software without KVM, and boots a disk copy-on-write', () => {
    const argv = qemuArgv({ ...spec, accelerator: 'tcg', boot: 'disk', disk: '/images/pc.qcow2', interfaces: [...spec.interfaces, { hostLink: 'vlb', mac: '52:54:00:00:00:01' }] });
    expect(argv.join(' ')).toContain('-accel tcg -cpu max');
    expect(argv.join(' ')).toContain('-drive file=/images/pc.qcow2,if=virtio,snapshot=on -boot order=c');
    expect(argv.join(' ')).toContain('-netdev tap,id=net1,ifname=vlb,script=no,downscript=no -device e1000,netdev=net1,mac=52:54:00:00:00:01');
  });

  it('probes KVM with a boot sector that waits for the clock', () => {
    const image = probeImage();
    expect(image.length).toBe(512);
    expect([...image.subarray(510)]).toEqual([0x55, 0xaa]);
  });

  it('reads console output as text', () => {
    expect(cleanConsole('\x1b[2J\x1b[01;01Hboot\r\n\x1b[0mdone\r\n')).toBe('boot\ndone\n');
  });
});

const sadmLike = {
  ...defaultLab,
  networks: [
    { name: 'uplink', subnet: '10.9.0.0/24', nat: true },
    { name: 'users', subnet: '192.168.0.0/24', router: 'gw' },
  ],
  machines: [
    { name: 'gw', interfaces: [{ network: 'uplink', address: '10.9.0.254' }, { network: 'users', address: '192.168.0.254', name: 'users' }] },
    { name: 'pc', kind: 'vm', vm: { memoryMiB: 128 }, interfaces: [{ network: 'users' }] },
  ],
};

function problem(machine: Record<string, unknown>): string {
  try {
    validateConfig({ ...sadmLike, machines: [sadmLike.machines[0], machine] });
  } catch (error) {
    expect((error as { exitCode: number }).exitCode).toBe(2);
    return (error as Error).message;
  }
  throw new Error('expected the config to be rejected');
}

describe('vm machines in the config', () => {
  it('get a stable MAC per machine and network, the same whatever the lab\'s name, and no stages', () => {
    const topology = topologyOf(validateConfig(sadmLike));
    const pc = topology.machines.find((m) => m.name === 'pc')!;
    expect(pc.kind).toBe('vm');
    expect(pc.interfaces[0]!.mac).toBe(interfaceMac('pc', 'users', 'vm'));
    expect(pc.interfaces[0]!.mac).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    expect(interfaceMac('pc', 'servers', 'vm')).not.toBe(pc.interfaces[0]!.mac);
    expect(topologyOf(validateConfig({ ...sadmLike, name: 'other' })).machines.find((m) => m.name === 'pc')!.interfaces[0]!.mac).toBe(pc.interfaces[0]!.mac);
  });

  it('refuse what a vm cannot have, naming the field, before the host is touched', () => {
    const vm = { name: 'pc', kind: 'vm', interfaces: [{ network: 'users' }] };
    expect(problem({ ...vm, interfaces: [{ network: 'nosuch' }] })).toMatch(/machines\.1\.interfaces\.0\.network: unknown network 'nosuch'|nosuch/);
    expect(problem({ ...vm, vm: { memoryMiB: 8 } })).toContain('machines.1.vm.memoryMiB: at least 32 MiB');
    expect(problem({ ...vm, vm: { cpus: 0 } })).toContain('machines.1.vm.cpus: at least 1');
    expect(problem({ ...vm, vm: { cpus: 1000 } })).toContain('machines.1.vm.cpus: at most 64');
    expect(problem({ ...vm, stages: ['dns'] })).toContain('machines.1.stages: a vm has no stages');
    expect(problem({ ...vm, interfaces: [{ network: 'users', address: '192.168.0.5' }] })).toContain('machines.1.interfaces.0.address: a vm takes its addresses by DHCP');
    expect(problem({ ...vm, vm: { boot: 'disk' } })).toContain('machines.1.vm.disk: required when vm.boot is disk');
    expect(problem({ name: 'pc', vm: { memoryMiB: 64 }, interfaces: [{ network: 'users' }] })).toContain('machines.1.vm: only for a machine of kind vm');
  });

  it('refuse a disk image that does not exist (exit 2)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-vm-'));
    const file = path.join(dir, 'lab.config.json');
    writeFileSync(file, JSON.stringify({ ...sadmLike, name: `vm${process.pid}`.slice(0, 12), machines: [sadmLike.machines[0], { name: 'pc', kind: 'vm', vm: { boot: 'disk', disk: 'pc.qcow2' }, interfaces: [{ network: 'users' }] }] }));
    await expect(loadConfig({ file })).rejects.toThrow(`machines.1.vm.disk: ${path.join(dir, 'pc.qcow2')} does not exist`);
  });
});

describe('a vm disk that is not a disk image', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lab-disk-'));
  const file = (name: string, content: string | Buffer) => (writeFileSync(path.join(dir, name), content), path.join(dir, name));
  const bootSector = Buffer.alloc(1024);
  bootSector.set([0x55, 0xaa], 510);
  const raw = file('pc.img', bootSector);
  const text = file('notes.txt', 'not a disk\n');
  const qcowLike = file('broken.qcow2', Buffer.concat([Buffer.from('QFI\xfb', 'latin1'), Buffer.alloc(60, 0xff)]));
  const qemuImg = findCommand('qemu-img');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.skipIf(!qemuImg)('is told by qemu-img: a qcow2 and a bootable raw disk pass, a text file, a directory and a broken qcow2 do not', async () => {
    const qcow2 = path.join(dir, 'pc.qcow2');
    await run([qemuImg!, 'create', '-q', '-f', 'qcow2', qcow2, '1M']);
    expect(await diskImageProblem(qcow2)).toBeUndefined();
    expect(await diskImageProblem(raw)).toBeUndefined();
    expect(await diskImageProblem(text)).toBe('not a disk image: neither a format qemu-img knows nor a raw disk with a boot sector');
    expect(await diskImageProblem(dir)).toBe('is not a file: a disk image is a file (or a block device)');
    expect(await diskImageProblem(qcowLike)).toMatch(/^qemu-img cannot read it: qemu-img: Could not open/);
    expect(await diskImageProblem(path.join(dir, 'gone.img'))).toBe('does not exist');
  });

  it('without qemu-img, takes a qcow2 header or a boot sector for a disk, and nothing else', async () => {
    expect(await diskImageProblem(raw, null)).toBeUndefined();
    expect(await diskImageProblem(qcowLike, null)).toBeUndefined();
    expect(await diskImageProblem(text, null)).toMatch(/^not a disk image/);
    expect(await diskImageProblem(file('short.img', Buffer.alloc(100)), null)).toMatch(/^not a disk image/);
  });

  it('is refused when its vm starts, exit 2 naming the field', async () => {
    const config = validateConfig({ ...sadmLike, machines: [sadmLike.machines[0], { name: 'pc', kind: 'vm', vm: { boot: 'disk', disk: text }, interfaces: [{ network: 'users' }] }] });
    const vms = new QemuVms({ labName: 'lab', machines: config.machines, topology: topologyOf(config), netnsPrefix: [], socketsDir: dir, consoleLog: () => path.join(dir, 'console.log'), nspawnName: (m) => `lab-${m}` });
    await expect(vms.assertDisk('pc')).rejects.toMatchObject({ exitCode: 2, message: `invalid config: machines.1.vm.disk: ${text}: not a disk image: neither a format qemu-img knows nor a raw disk with a boot sector` });
    await expect(vms.assertDisk('gw')).resolves.toBeUndefined();
  });
});

describe("gw's netboot settings", () => {
  it('serve iPXE over TFTP to PXE ROMs, and the script over HTTP to iPXE', () => {
    const topology = topologyOf(validateConfig(sadmLike));
    expect(netbootDnsmasq(topology, 'gw').split('\n')).toEqual([
      '# Managed by lab: netboot (PXE, TFTP, iPXE over HTTP) for the machines gw leases addresses to.',
      'enable-tftp',
      'tftp-root=/srv/tftp',
      'dhcp-match=set:ipxe,175',
      'dhcp-boot=tag:uplink,tag:!ipxe,undionly.kpxe,gw,10.9.0.254',
      'dhcp-boot=tag:uplink,tag:ipxe,http://10.9.0.254/boot.ipxe',
      'dhcp-boot=tag:users,tag:!ipxe,undionly.kpxe,gw,192.168.0.254',
      'dhcp-boot=tag:users,tag:ipxe,http://192.168.0.254/boot.ipxe',
      '',
    ]);
  });

  it("are lab's own stage, found by name with lab's fixtures by a lab that has stages of its own (examples/sadm)", async () => {
    const { config, file } = await loadConfig({ file: path.join(packageRoot, 'examples', 'sadm', 'lab.config.yaml') });
    const gw = (await loadLab(config, undefined, file)).machines.find((m) => m.name === 'gw')!;
    const netboot = gw.stages.find((s) => s.name === 'netboot')!;
    expect([netboot.file, netboot.fixturesDir]).toEqual([path.join(builtinStagesDir, 'gw', 'netboot.js'), builtinFixturesDir]);
    expect(gw.stages.find((s) => s.name === 'firewall')!.file).toBe(path.join(packageRoot, 'examples', 'sadm', 'stages', 'gw', 'firewall.ts'));
  });
});

describe("gw's dns stage", () => {
  it('names each vm by its MAC (a container names itself in its DHCP request), and answers for the static addresses', () => {
    const config = validateConfig({
      ...sadmLike,
      machines: [
        ...sadmLike.machines,
        { name: 'pc2', kind: 'vm', interfaces: [{ network: 'users' }] },
        { name: 'box', interfaces: [{ network: 'users' }] },
      ],
    });
    const { values, hosts } = dnsmasqSettings(labView(config, config.machines[0]!));
    expect(values.vms!.split('\n')).toEqual([`dhcp-host=${interfaceMac('pc', 'users', 'vm')},pc`, `dhcp-host=${interfaceMac('pc2', 'users', 'vm')},pc2`]);
    expect(hosts).toBe(`10.9.0.254 gw.${config.zone.domain} gw\n192.168.0.254 gw.${config.zone.domain} gw\n`);
  });
});
