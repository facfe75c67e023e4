import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultLab } from '../../lib/config/default.js';
import { validateConfig } from '../../lib/config/validate.js';
import { hostProfile } from '../../lib/host/profile.js';
import { topologyOf } from '../../lib/config/topology.js';
import { networkdFiles } from '../../lib/network/networkd.js';
import { nspawnFile } from '../../lib/runtime/machinectl.js';
import { createImage } from '../../lib/image/create.js';
import { debootstrapCommand } from '../../lib/image/debootstrap.js';
import { ARCH_IGNORE, pacstrapCommand } from '../../lib/image/pacstrap.js';

const config = (overrides: object) => validateConfig({ ...defaultLab, ...overrides });

describe('image sources', () => {
  it('runs pacstrap as the seed does, without its interactive prompts', () => {
    expect(pacstrapCommand(['base', 'curl', 'iproute2', 'iputils'], '/pool/images/base.partial')).toEqual([
      'pacstrap', '-c', '-G', '-M', '/pool/images/base.partial', 'base', 'curl', 'iproute2', 'iputils',
      '--ignore', 'linux,linux-firmware,cryptsetup,jfsutils,lvm2,nano,netctl,reiserfsprogs,vi,xfsprogs,mdadm,device-mapper,licenses,man-pages,pcmciautils',
      '--noconfirm', '--needed',
    ]);
    expect(ARCH_IGNORE).toContain('linux-firmware');
  });

  it('runs debootstrap with minbase, the packages and a shared download cache', () => {
    expect(debootstrapCommand('bookworm', ['curl', 'systemd'], 'http://mirror.example/debian', '/t', '/cache')).toEqual(['debootstrap', '--variant=minbase', '--include=curl,systemd', '--cache-dir=/cache', 'bookworm', '/t', 'http://mirror.example/debian']);
  });

  it('refuses what cannot work here, with what to use instead, when checked (not when made)', async () => {
    const arch = createImage(config({ image: { source: 'pacstrap', distribution: 'arch' } }));
    await expect(arch.check()).rejects.toThrow(/pacstrap: pacstrap and pacman not found/);
    const missing = createImage(config({ image: { source: 'tarball', tarball: '/no/such.tar' } }));
    await expect(missing.check()).rejects.toThrow('image.tarball: /no/such.tar does not exist');
    expect(() => config({ image: { source: 'tarball' } })).toThrow('image.tarball: required when image.source is tarball');
    expect(() => config({ image: { source: 'pacstrap' } })).toThrow('image.distribution: pacstrap builds arch, not debian');
  });

  it('keys a tarball image by the file, so that a new tarball rebuilds', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-tar-'));
    const file = path.join(dir, 'root.tar');
    writeFileSync(file, 'one');
    const first = createImage(config({ image: { source: 'tarball', tarball: file } }));
    writeFileSync(file, 'a different tarball');
    const second = createImage(config({ image: { source: 'tarball', tarball: file } }));
    expect(first.source).toBe('tarball');
    expect(first.key).not.toBe(second.key);
  });
});

describe('host profiles', () => {
  it('never puts a sandbox lab under machined, and refuses machinectl where it cannot run', () => {
    expect(hostProfile(config({})).runtime).toBe('nspawn');
    expect(() => hostProfile(config({ runtime: 'machinectl' }))).toThrow(/needs network.mode host/);
    // This machine has no systemd as PID 1: machinectl cannot be had even in host mode. That is a
    // problem for the commands that run machines, not for opening the lab (doctor, destroy).
    const profile = hostProfile(config({ runtime: 'machinectl', network: { mode: 'host' } }));
    expect(profile.problem?.message).toMatch(/not systemd, so machined cannot run/);
  });

  it('picks nspawn on a systemd host with machined, in host mode, when the lab has diskless machines', () => {
    const systemd = { pid1: 'systemd', systemdPid1: true, machined: true, networkd: false };
    const host = { network: { mode: 'host' } };
    expect(hostProfile(config(host), systemd).runtime).toBe('machinectl');
    const diskless = hostProfile(config({ ...host, zone: { dnsMachine: null }, machines: [{ name: 'rhfs', address: '10.224.0.20' }, { name: 'pc1', kind: 'diskless', address: '10.224.0.21', root: { machine: 'rhfs', path: '/srv' } }] }), systemd);
    expect(diskless).toMatchObject({ runtime: 'nspawn', why: expect.stringContaining('diskless machines') });
  });

  it('writes the .nspawn file and the networkd files of the seeds', () => {
    expect(nspawnFile('vz-prolo')).toContain('[Network]\nBridge=vz-prolo');
    expect(nspawnFile('vz-prolo')).toContain('PrivateUsers=no');
    expect(nspawnFile('vz-prolo')).not.toContain('[Files]');
    // A machine's binds, as with the nspawn runtime: not recursive, read-only unless said otherwise.
    expect(nspawnFile('vz-prolo', [{ source: '/repo', target: '/root/sadm', readonly: true }, { source: '/repo/data', target: '/data' }])).toContain(
      '[Files]\nBindReadOnly=/repo:/root/sadm:norbind\nBind=/repo/data:/data:norbind\n',
    );
    const files = networkdFiles(topologyOf(config({})).networks[0]!);
    expect(files.netdev).toContain('Name=vz-prolo\nKind=bridge');
    expect(files.network).toContain('Address=10.224.0.1/24\nIPMasquerade=ipv4');
  });
});
