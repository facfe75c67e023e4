import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { assertBindSourceUnchanged } from '../../lib/config/binds.js';
import { cacheFile } from '../../lib/config/cache.js';
import { defaultLab } from '../../lib/config/default.js';
import { loadConfig, mergeConfig } from '../../lib/config/load.js';
import { validateConfig } from '../../lib/config/validate.js';
import { UsageError } from '../../lib/errors.js';

const withMachines = (machines: unknown) => ({ ...defaultLab, machines });

function invalid(input: unknown): UsageError {
  try {
    validateConfig(input);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).exitCode).toBe(2);
    return error as UsageError;
  }
  throw new Error('expected the config to be rejected');
}

describe('config validation', () => {
  it('accepts the default lab and fills in defaults', () => {
    const config = validateConfig(defaultLab);
    expect(config.name).toBe('lab');
    expect(config.zone).toMatchObject({ name: 'prolo', domain: 'prolo', dnsMachine: 'gw' });
    expect(config.network.mode).toBe('sandbox');
    expect(config.storage.kind).toBe('btrfs');
    expect(config.stageLimits).toEqual({ timeoutSeconds: 900, logMiB: 64 });
    expect(config.machines.map((m) => m.name)).toEqual(['gw', 'web-silicon', 'web']);
  });

  it('names the field of a malformed value', () => {
    expect(invalid({ ...defaultLab, name: 'Bad Name' }).message).toMatch(/^invalid config: name: /);
    expect(invalid({ ...defaultLab, network: { mode: 'bridge' } }).message).toMatch(/network\.mode/);
    expect(invalid({ ...defaultLab, storage: { poolSize: 'big' } }).message).toMatch(/storage\.poolSize/);
    expect(invalid({ ...defaultLab, colour: 'blue' }).message).toMatch(/colour/);
    expect(invalid(withMachines([{ name: 'gw', address: '10.224.0.300' }])).message).toMatch(/machines\.0\.address/);
    expect(invalid({ ...defaultLab, zone: { subnet: '999.224.0.0/24' } }).message).toBe('invalid config: zone.subnet: each octet must be at most 255');
    expect(invalid({ ...defaultLab, stageLimits: { timeoutSeconds: 0 } }).message).toMatch(/^invalid config: stageLimits\.timeoutSeconds: /);
    expect(invalid({ ...defaultLab, stageLimits: { timeoutSeconds: '30m' } }).message).toMatch(/^invalid config: stageLimits\.timeoutSeconds: /);
    expect(invalid({ ...defaultLab, stageLimits: { logMiB: 0.5 } }).message).toMatch(/^invalid config: stageLimits\.logMiB: /);
  });

  it('refuses a lab too big for its subnet\'s DHCP range or its pool, with the figure that does not fit', () => {
    const many = Array.from({ length: 12 }, (_, i) => ({ name: `m${i}`, address: 'dhcp' }));
    const small = { ...defaultLab, zone: { subnet: '10.224.0.0/27', hostAddress: '10.224.0.1' }, machines: [{ name: 'gw', address: '10.224.0.30' }, ...many] };
    expect(invalid(small).message).toBe("invalid config: zone.subnet: 12 machines take an address by DHCP on 'prolo', but its DHCP range (10.224.0.16 to 10.224.0.22) holds 7: use a larger subnet");
    expect(invalid({ ...defaultLab, storage: { poolSize: '600M' }, machines: [{ name: 'gw', address: '10.224.0.254' }, ...many] }).message).toBe(
      'invalid config: storage.poolSize: 600M is too small for 13 machines: they need at least 928M (512M for the base image, 32M per machine with a root of its own)',
    );
  });

  it('finds a dependency cycle before anything runs, including the wait of DHCP machines for the DHCP server', () => {
    const direct = withMachines([
      { name: 'gw', address: '10.224.0.254' },
      { name: 'a', address: '10.224.0.2', dependsOn: ['b'] },
      { name: 'b', address: '10.224.0.3', dependsOn: ['a'] },
    ]);
    expect(invalid(direct).message).toContain('dependency cycle a -> b -> a');
    // gw serves DHCP, so web (by DHCP) waits for gw; gw waiting for web closes a cycle.
    const viaDhcp = withMachines([
      { name: 'gw', address: '10.224.0.254', dependsOn: ['web'] },
      { name: 'web', address: 'dhcp' },
    ]);
    expect(invalid(viaDhcp).message).toContain('dependency cycle gw -> web -> gw (machines using DHCP also wait for gw)');
  });

  it('rejects overlapping and out-of-zone addresses', () => {
    const clash = invalid(withMachines([{ name: 'gw', address: '10.224.0.254' }, { name: 'db', address: '10.224.0.254' }]));
    expect(clash.message).toContain("machines.1.address: 10.224.0.254 is already used by machine 'gw'");
    expect(invalid(withMachines([{ name: 'gw', address: '10.224.0.1' }])).message).toContain('already used by zone.hostAddress');
    expect(invalid(withMachines([{ name: 'gw', address: '10.9.0.4' }])).message).toContain('machines.0.address: 10.9.0.4 is not a host address of 10.224.0.0/24');
    expect(invalid({ ...defaultLab, network: { wanSubnet: '10.224.0.0/16' } }).message).toContain('network.wanSubnet');
  });

  it('rejects bad references between machines', () => {
    expect(invalid(withMachines([{ name: 'gw', address: '10.224.0.254', dependsOn: ['db'] }])).message).toContain(
      "machines.0.dependsOn: unknown machine 'db'",
    );
    expect(invalid(withMachines([{ name: 'gw', address: '10.224.0.254', dependsOn: ['gw'] }])).message).toContain('depends on itself');
    expect(invalid(withMachines([{ name: 'gw', address: 'dhcp' }])).message).toContain("zone.dnsMachine: 'gw' serves DHCP, so it needs a static address");
    expect(invalid(withMachines([{ name: 'gw', address: '10.224.0.254', stages: ['dns', 'dns'] }])).message).toContain(
      "the stage 'dns' is listed twice",
    );
    expect(invalid(withMachines([{ name: 'gw', address: '10.224.0.254', stages: ['system'] }])).message).toContain('built-in');
  });

  it('merges a config over the default: objects key by key, arrays whole', () => {
    const merged = mergeConfig(defaultLab, { zone: { subnet: '10.5.0.0/24' }, machines: [{ name: 'solo', address: '10.5.0.2' }] });
    expect(merged.zone).toEqual({ subnet: '10.5.0.0/24' });
    expect(merged.machines).toEqual([{ name: 'solo', address: '10.5.0.2' }]);
  });
});

describe('config files', () => {
  const dir = () => mkdtempSync(path.join(tmpdir(), 'lab-config-'));

  it('reads YAML, resolves directories relative to the file, and honours --name', async () => {
    const d = dir();
    writeFileSync(
      path.join(d, 'lab.config.yaml'),
      'stateDir: state\nzone: { dnsMachine: null }\nmachines:\n  - name: solo\n    address: 10.224.0.7\n',
    );
    const { config, file } = await loadConfig({ cwd: d, name: 'other' });
    expect(file).toBe(path.join(d, 'lab.config.yaml'));
    expect(config.name).toBe('other');
    expect(config.stateDir).toBe(path.join(d, 'state'));
    expect(config.machines).toEqual([{ name: 'solo', kind: 'container', address: '10.224.0.7', dependsOn: [], stages: [], binds: [], aliases: [], publish: [], groups: [] }]);
  });

  it('reads a TypeScript config', async () => {
    const d = dir();
    writeFileSync(path.join(d, 'lab.config.ts'), "const name: string = 'typed';\nexport default { name, network: { mode: 'host' as const } };\n");
    const { config } = await loadConfig({ cwd: d });
    expect(config.name).toBe('typed');
    expect(config.network.mode).toBe('host');
  });

  it("follows SADM's container_setup.conf: USE_BTRFS=false means copy storage", async () => {
    const d = dir();
    writeFileSync(path.join(d, 'lab.config.json'), '{}');
    writeFileSync(path.join(d, 'container_setup.conf'), 'USE_BTRFS=false\n');
    expect((await loadConfig({ cwd: d })).config.storage.kind).toBe('copy');
  });

  it('reports a missing or broken file as bad usage', async () => {
    const d = dir();
    await expect(loadConfig({ cwd: d, file: 'nope.yaml' })).rejects.toThrow(/config file not found: nope.yaml/);
    writeFileSync(path.join(d, 'bad.yaml'), 'machines: [\n');
    await expect(loadConfig({ cwd: d, file: 'bad.yaml' })).rejects.toMatchObject({ exitCode: 2 });
  });

  it("sees an edit of the config that kept its size and modification time, and a stages/ made beside it since", async () => {
    const uid = vi.spyOn(process, 'getuid').mockReturnValue(0); // the cache is root's
    try {
      const d = dir();
      const file = path.join(d, 'lab.config.yaml');
      const then = new Date('2025-01-01T00:00:00Z');
      writeFileSync(file, 'name: aaaa\n');
      utimesSync(file, then, then);
      const before = statSync(file);
      const cached = cacheFile(file, {});
      expect(cacheFile(file, {})).toBe(cached);
      writeFileSync(file, 'name: bbbb\n');
      utimesSync(file, then, then);
      expect(statSync(file)).toMatchObject({ size: before.size, mtimeMs: before.mtimeMs });
      const edited = cacheFile(file, {});
      expect(edited).not.toBe(cached);
      mkdirSync(path.join(d, 'stages'));
      expect(cacheFile(file, {})).not.toBe(edited);
      expect(cacheFile(file, { name: 'other' })).not.toBe(cacheFile(file, {}));
      expect(cacheFile(path.join(d, 'lab.config.ts'), {})).toBeUndefined();
    } finally {
      uid.mockRestore();
    }
  });
});

describe('binds', () => {
  const machine = (binds: unknown[]) => withMachines([{ name: 'box', address: '10.224.0.5', binds }]);
  const target = (t: string) => invalid({ ...machine([{ source: '.', target: t }]), zone: { dnsMachine: null } }).message;

  it("refuses a target that is the machine's root, under its kernel's or systemd's mounts, with '..', or not written plainly", () => {
    expect(target('/')).toBe("invalid config: machines.0.binds.0.target: the machine's root cannot be bound over");
    for (const t of ['/proc', '/sys/fs/cgroup', '/dev', '/run', '/run/lab-stage']) expect(target(t)).toMatch(new RegExp(`^invalid config: machines\\.0\\.binds\\.0\\.target: ${t} is under /(proc|sys|dev|run), which the machine's kernel and systemd mount themselves$`));
    expect(target('/srv/../proc')).toBe("invalid config: machines.0.binds.0.target: '..' is not allowed in a target (/srv/../proc)");
    expect(target('/srv//data/')).toBe('invalid config: machines.0.binds.0.target: write it as /srv/data');
    expect(target('srv')).toContain('machines.0.binds.0.target: an absolute path inside the machine');
    expect(validateConfig({ ...machine([{ source: '.', target: '/srv/run' }]), zone: { dnsMachine: null } }).machines[0].binds[0]).toEqual({ source: '.', target: '/srv/run', readonly: true, allowOutside: false });
  });

  /** A config directory with `repo/` in it, and a config binding `sources` (one bind each, written as given). */
  function labDir(sources: { source: string; allowOutside?: boolean }[]): string {
    const d = mkdtempSync(path.join(tmpdir(), 'lab-binds-'));
    mkdirSync(path.join(d, 'repo', 'sub'), { recursive: true });
    const binds = sources.map((s, i) => `{ source: '${s.source}', target: /srv/b${i}${s.allowOutside ? ', allowOutside: true' : ''} }`);
    writeFileSync(path.join(d, 'lab.config.yaml'), `zone: { dnsMachine: null }\nmachines:\n  - { name: box, address: 10.224.0.5, binds: [${binds.join(', ')}] }\n`);
    return d;
  }
  const refused = async (d: string) => {
    const error = await loadConfig({ cwd: d }).then(() => undefined, (e: unknown) => e as UsageError);
    expect(error, 'the config was accepted').toBeInstanceOf(UsageError);
    expect(error!.exitCode).toBe(2);
    return error!.message.replace(`invalid config in ${path.join(d, 'lab.config.yaml')}: `, '');
  };

  it('resolves a source once, to its real path, which is what is bound', async () => {
    const d = labDir([{ source: 'link' }, { source: 'repo/sub/../sub' }]);
    symlinkSync('repo', path.join(d, 'link'));
    const { config } = await loadConfig({ cwd: d });
    expect(config.machines[0].binds.map((b) => b.source)).toEqual([path.join(d, 'repo'), path.join(d, 'repo', 'sub')]);
  });

  it('refuses a source that does not exist or is not a directory', async () => {
    expect(await refused(labDir([{ source: 'missing' }]))).toMatch(/^machines\.0\.binds\.0\.source: .*\/missing does not exist$/);
    const d = labDir([{ source: 'file' }]);
    writeFileSync(path.join(d, 'file'), 'x');
    expect(await refused(d)).toBe(`machines.0.binds.0.source: ${path.join(d, 'file')} is not a directory`);
  });

  it('lists every path problem at once, each naming its field', async () => {
    const d = labDir([{ source: 'missing' }, { source: 'repo' }, { source: 'file' }]);
    writeFileSync(path.join(d, 'file'), 'x');
    const where = `invalid config in ${path.join(d, 'lab.config.yaml')}: `;
    expect((await refused(d)).split(`\n${where}`)).toEqual([`machines.0.binds.0.source: ${path.join(d, 'missing')} does not exist`, `machines.0.binds.2.source: ${path.join(d, 'file')} is not a directory`]);
  });

  it('opens a lab whose source is gone for the commands that take it down or look at it (destroy, down, doctor)', async () => {
    const d = labDir([{ source: 'repo' }]);
    await loadConfig({ cwd: d });
    rmSync(path.join(d, 'repo'), { recursive: true });
    expect(await refused(d)).toMatch(/repo does not exist$/);
    expect((await loadConfig({ cwd: d, checkPaths: false })).config.machines[0].binds[0].source).toBe(path.join(d, 'repo'));
  });

  it('refuses / and system directories, also through a symlink or .., even with allowOutside', async () => {
    // /bin and /lib64 may be links into /usr: refused as written and as resolved.
    for (const source of ['/', '/etc', '/usr/lib', '/var/lib', '/bin', '/lib64']) {
      expect(await refused(labDir([{ source, allowOutside: true }]))).toMatch(new RegExp(`^machines\\.0\\.binds\\.0\\.source: ${source}( \\(it resolves to /usr${source}\\))? is a system directory: never bound$`));
    }
    const up = labDir([{ source: '../../../../../../../../etc', allowOutside: true }]);
    expect(await refused(up)).toBe('machines.0.binds.0.source: /etc is a system directory: never bound');
    const linked = labDir([{ source: 'repo' }, { source: 'etc', allowOutside: true }]);
    symlinkSync('/etc', path.join(linked, 'etc'));
    expect(await refused(linked)).toBe(`machines.0.binds.1.source: ${path.join(linked, 'etc')} (it resolves to /etc) is a system directory: never bound`);
    expect(await refused(labDir([{ source: '/proc/self', allowOutside: true }]))).toMatch(/^machines\.0\.binds\.0\.source: \/proc\/self \(it resolves to \/proc\/\d+\) is in \/proc, the kernel's: never bound$/);
  });

  it("refuses lab's own directories: the state root and the cache, inside or around them", async () => {
    const inside = labDir([{ source: 'state/lab' }]);
    writeFileSync(path.join(inside, 'lab.config.yaml'), readFileSync(path.join(inside, 'lab.config.yaml'), 'utf8').replace('zone:', 'stateDir: state\nzone:'));
    mkdirSync(path.join(inside, 'state', 'lab'), { recursive: true });
    expect(await refused(inside)).toBe(`machines.0.binds.0.source: ${path.join(inside, 'state', 'lab')} is in ${path.join(inside, 'state')}, lab's own (every lab's pool and keys): never bound`);
    const around = labDir([{ source: '.' }]);
    writeFileSync(path.join(around, 'lab.config.yaml'), readFileSync(path.join(around, 'lab.config.yaml'), 'utf8').replace('zone:', 'cacheDir: repo/cache\nzone:'));
    expect(await refused(around)).toBe(`machines.0.binds.0.source: ${around} holds ${path.join(around, 'repo', 'cache')}, lab's own (every lab's pool and keys): never bound`);
  });

  it("refuses a source outside the config's directory unless the bind says allowOutside: true", async () => {
    const elsewhere = mkdtempSync(path.join(tmpdir(), 'lab-elsewhere-'));
    const d = labDir([{ source: elsewhere }]);
    expect(await refused(d)).toBe(`machines.0.binds.0.source: ${elsewhere} is outside the config's directory ${d}: say allowOutside: true to bind it anyway (the machine then reads, or writes, a host directory lab does not own)`);
    const escape = labDir([{ source: 'out' }]);
    symlinkSync(elsewhere, path.join(escape, 'out'));
    expect(await refused(escape)).toContain(`machines.0.binds.0.source: ${path.join(escape, 'out')} (it resolves to ${elsewhere}) is outside the config's directory`);
    const allowed = labDir([{ source: elsewhere, allowOutside: true }]);
    expect((await loadConfig({ cwd: allowed })).config.machines[0].binds[0].source).toBe(elsewhere);
  });

  it('refuses at mount time a source that no longer resolves to what was checked', () => {
    const d = mkdtempSync(path.join(tmpdir(), 'lab-swap-'));
    mkdirSync(path.join(d, 'data'));
    expect(() => assertBindSourceUnchanged(path.join(d, 'data'), 'machines.0.binds.0.source')).not.toThrow();
    rmSync(path.join(d, 'data'), { recursive: true });
    symlinkSync('/etc', path.join(d, 'data'));
    expect(() => assertBindSourceUnchanged(path.join(d, 'data'), 'machines.0.binds.0.source')).toThrow(`machines.0.binds.0.source: ${path.join(d, 'data')} now resolves to /etc since lab checked it: refused`);
    rmSync(path.join(d, 'data'));
    expect(() => assertBindSourceUnchanged(path.join(d, 'data'), 'machines.0.binds.0.source')).toThrow('is gone since lab checked it');
  });
});
