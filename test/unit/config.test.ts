import { mkdirSync, mkdtempSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
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
      'invalid config: storage.poolSize: 600M is too small for 13 machines: they need at least 928M (512M for the base image, 32M per machine)',
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
