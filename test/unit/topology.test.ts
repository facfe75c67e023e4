import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { mergeConfig } from '../../lib/config/load.js';
import { defaultLab } from '../../lib/config/default.js';
import { topologyOf } from '../../lib/config/topology.js';
import { validateConfig } from '../../lib/config/validate.js';
import { natRuleset } from '../../lib/network/network.js';

const sadmFile = path.resolve(import.meta.dirname, '../../examples/sadm/lab.config.yaml');
const sadmInput = () => mergeConfig(defaultLab, parse(readFileSync(sadmFile, 'utf8')));
const sadm = () => validateConfig(sadmInput());

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the tests break the config on purpose, field by field
type Loose = any;

function invalid(change: (input: Loose) => void): string {
  const input: Loose = sadmInput();
  change(input);
  try {
    validateConfig(input);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected the config to be refused');
}

describe('the topology of examples/sadm', () => {
  const topology = topologyOf(sadm());

  it('has a bridge per network, the host only on the NAT\'ed uplink, gw as the router of the others', () => {
    expect(topology.networks.map((n) => [n.name, n.bridge, n.hostAddress ?? null, n.gateway ?? null])).toEqual([
      ['uplink', 'vz-uplink', '10.9.0.1', '10.9.0.1'],
      ['servers', 'vz-servers', null, '192.168.1.254'],
      ['users', 'vz-users', null, '192.168.0.254'],
      ['alien', 'vz-alien', null, '192.168.250.254'],
    ]);
  });

  it('has gw serve DHCP on every network it is on, with a range in each', () => {
    expect(topology.networks.map((n) => n.dhcp)).toEqual([
      { server: 'gw', serverAddress: '10.9.0.254', start: '10.9.0.128', end: '10.9.0.246' },
      { server: 'gw', serverAddress: '192.168.1.254', start: '192.168.1.128', end: '192.168.1.246' },
      { server: 'gw', serverAddress: '192.168.0.254', start: '192.168.0.128', end: '192.168.0.246' },
      { server: 'gw', serverAddress: '192.168.250.254', start: '192.168.250.128', end: '192.168.250.246' },
    ]);
  });

  it('routes each machine by its first network with a gateway other than itself', () => {
    const routes = Object.fromEntries(topology.machines.map((m) => [m.name, m.interfaces.filter((i) => i.defaultRoute).map((i) => `${i.name}@${i.network}`)]));
    // The room's diskless machines too, r01p01 ... r01p10.
    const room = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`r01p${String(i + 1).padStart(2, '0')}`, ['host0@users']]));
    expect(routes).toEqual({ gw: ['uplink@uplink'], web: ['host0@servers'], rhfs: ['host0@servers'], r00p01: ['host0@users'], r00p02: ['host0@users'], alien01: ['host0@alien'], r00p03: ['host0@users'], ...room });
    expect(topology.machines.filter((m) => m.router).map((m) => m.name)).toEqual(['gw']);
  });

  it('names the host side of every veth within 15 characters, uniquely', () => {
    const links = topology.machines.flatMap((m) => m.interfaces.map((i) => i.hostLink));
    expect(new Set(links).size).toBe(links.length);
    for (const link of links) expect(link.length).toBeLessThanOrEqual(15);
  });

  it('NATs the uplink only: the networks gw routes get no forwarding from the host', () => {
    const rules = natRuleset('lab_sadm', topology.networks);
    expect(rules).toContain('ip saddr 10.9.0.0/24 oifname != { "vz-uplink", "vz-servers", "vz-users", "vz-alien" } masquerade');
    expect(rules).not.toMatch(/192\.168/);
    expect(rules).not.toMatch(/"vz-users" accept|iifname "vz-alien"/);
  });

  it('keeps the one-network case as before', () => {
    const one = topologyOf(validateConfig(defaultLab));
    expect(one.networks.map((n) => [n.name, n.bridge, n.subnet, n.hostAddress, n.nat])).toEqual([['prolo', 'vz-prolo', '10.224.0.0/24', '10.224.0.1', true]]);
    expect(one.machines.map((m) => m.interfaces.map((i) => `${i.name}:${i.address}:${i.defaultRoute}`))).toEqual([['host0:10.224.0.254:true'], ['host0:dhcp:true'], ['host0:dhcp:true']]);
  });
});

describe('bad networks and interfaces are refused, naming the field', () => {
  it('overlapping subnets, and the simulated internet', () => {
    expect(invalid((c) => (c.networks[2].subnet = '192.168.1.0/25'))).toContain("networks.2.subnet: 192.168.1.0/25 overlaps network 'servers' (192.168.1.0/24)");
    expect(invalid((c) => (c.networks[0].subnet = '198.51.100.0/24'))).toContain('networks.0.subnet: 198.51.100.0/24 overlaps the simulated internet');
  });

  it('an address outside its network, twice the same address, an unknown network, two cards on one network', () => {
    expect(invalid((c) => (c.machines[1].interfaces[0].address = '192.168.0.10'))).toContain('machines.1.interfaces.0.address: 192.168.0.10 is not a host address of 192.168.1.0/24');
    expect(invalid((c) => (c.machines[2].interfaces[0].address = '192.168.1.10'))).toContain("machines.2.interfaces.0.address: 192.168.1.10 is already used by machine 'web'");
    expect(invalid((c) => (c.machines[1].interfaces[0].network = 'dmz'))).toContain("machines.1.interfaces.0.network: unknown network 'dmz' (networks: uplink, servers, users, alien)");
    expect(invalid((c) => (c.machines[2].interfaces[1].network = 'servers'))).toContain("machines.2.interfaces.1.network: 'rhfs' has two interfaces on 'servers'");
  });

  it("the host's own address on a NAT'ed network, given or by default its first address", () => {
    expect(invalid((c) => (c.machines[0].interfaces[0].address = '10.9.0.1'))).toBe(
      "invalid config: machines.0.interfaces.0.address: 10.9.0.1 is already used by the host on 'uplink' (its hostAddress: by default a NAT'ed network's first address)",
    );
    expect(invalid((c) => (c.networks[0].hostAddress = '10.9.0.254'))).toBe("invalid config: machines.0.interfaces.0.address: 10.9.0.254 is already used by the host on 'uplink'");
    // The zone: its hostAddress, 10.224.0.1 by default.
    expect(() => validateConfig({ ...defaultLab, machines: [{ name: 'gw', address: '10.224.0.1' }] })).toThrow('machines.0.address: 10.224.0.1 is already used by zone.hostAddress');
    // A routed network has no host address: its first address is a machine's to take.
    expect(() => validateConfig(mergeConfig(sadmInput(), { machines: sadmInput().machines.map((m) => (m.name === 'web' ? { ...m, interfaces: [{ network: 'servers', address: '192.168.1.1' }] } : m)) } as Loose))).not.toThrow();
  });

  it('a router without an interface on the network it routes, or without a static address there', () => {
    expect(invalid((c) => (c.networks[3].router = 'web'))).toContain("networks.3.router: 'web' has no interface on 'alien', the network it routes");
    expect(invalid((c) => (c.machines[0].interfaces[3].address = 'dhcp'))).toMatch(/gw' routes 'alien', so it needs a static address there|static address there/);
  });

  it('DHCP where the DHCP machine is not, and names too long for Linux interfaces', () => {
    expect(invalid((c) => c.machines[1].interfaces.push({ network: 'uplink' }) && (c.machines[0].interfaces = c.machines[0].interfaces.filter((i: any) => i.network !== 'uplink')))).toMatch(/DHCP on 'uplink', where the DHCP machine 'gw' has no interface/);
    expect(invalid((c) => (c.networks[1].name = 'servers-network'))).toContain('networks.1.name: lowercase letters and digits, at most 12 characters (the bridge vz-<name> has 15 at most)');
    expect(invalid((c) => (c.machines[0].interfaces[0].name = 'a-very-long-interface'))).toContain('machines.0.interfaces.0.name');
  });

  it('a bind target that is not absolute', () => {
    expect(invalid((c) => (c.machines[0].binds[0].target = 'root/sadm'))).toContain('machines.0.binds.0.target: an absolute path inside the machine');
  });
});
