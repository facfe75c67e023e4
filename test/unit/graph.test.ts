import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../lib/config/validate.js';
import { topologyOf } from '../../lib/config/topology.js';
import { rolesOf, toMermaid, toSvg } from '../../lib/report/graph.js';

const topology = topologyOf(
  validateConfig({
    name: 'g',
    zone: { domain: 'prolo', dnsMachine: 'gw' },
    networks: [
      { name: 'uplink', subnet: '10.9.0.0/24', nat: true },
      { name: 'users', subnet: '192.168.0.0/24', router: 'gw' },
    ],
    machines: [
      { name: 'gw', interfaces: [{ network: 'uplink', address: '10.9.0.254' }, { network: 'users', address: '192.168.0.254', name: 'users' }] },
      { name: 'pc', interfaces: [{ network: 'users' }] },
    ],
  }),
);

describe('topology graph', () => {
  it('names what each machine does', () => {
    expect(rolesOf(topology, topology.machines[0]!)).toEqual(['DNS/DHCP', 'routes users']);
    expect(rolesOf(topology, topology.machines[1]!)).toEqual([]);
  });

  it('writes Mermaid with every network, machine and interface', () => {
    expect(toMermaid(topology).split('\n')).toEqual([
      'flowchart TB',
      '  host(["host: NAT to the outside"])',
      '  net_uplink{{"uplink 10.9.0.0/24 (NAT by the host)"}}',
      '  net_users{{"users 192.168.0.0/24 (routed by gw)"}}',
      '  m_gw["gw<br/><i>DNS/DHCP; routes users</i>"]',
      '  m_pc["pc"]',
      '  host ---|"10.9.0.1"| net_uplink',
      '  m_gw ---|"host0 10.9.0.254 (default route)"| net_uplink',
      '  m_gw ---|"users 192.168.0.254"| net_users',
      '  m_pc ---|"host0 DHCP (default route)"| net_users',
      '',
    ]);
  });

  it('draws an SVG with a bus per network and a joint per interface, escaping names', () => {
    const svg = toSvg(topology);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.match(/<circle /g)).toHaveLength(3);
    expect(svg).toContain('>users 192.168.0.0/24 (routed by gw)</text>');
    expect(svg).toContain('>host0 DHCP ↑</text>');
    expect(svg).not.toMatch(/<text[^>]*>[^<]*[<>&][^<]*<\/text>/);
  });
});
