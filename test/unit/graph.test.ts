import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../lib/config/validate.js';
import { topologyOf } from '../../lib/config/topology.js';
import { rolesOf, toMermaid, toSvg } from '../../lib/report/graph.js';

/** gw, DNS for the zone, on a NAT'ed uplink and routing users (and `more` networks). */
const labOf = (more: object[], machines: object[]) =>
  topologyOf(
    validateConfig({
      name: 'g',
      zone: { domain: 'prolo', dnsMachine: 'gw' },
      networks: [{ name: 'uplink', subnet: '10.9.0.0/24', nat: true }, { name: 'users', subnet: '192.168.0.0/24', router: 'gw' }, ...more],
      machines,
    }),
  );

const topology = labOf(
  [],
  [
    { name: 'gw', interfaces: [{ network: 'uplink', address: '10.9.0.254' }, { network: 'users', address: '192.168.0.254', name: 'users' }] },
    { name: 'pc', interfaces: [{ network: 'users' }] },
  ],
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

describe('topology graph, published ports and a multi-homed machine', () => {
  const published = labOf(
    [{ name: 'staff', subnet: '192.168.1.0/24', router: 'gw' }],
    [
      { name: 'gw', interfaces: [{ network: 'uplink', address: '10.9.0.254' }, { network: 'users', address: '192.168.0.254', name: 'users' }, { network: 'staff', address: '192.168.1.254', name: 'staff' }] },
      { name: 'web', interfaces: [{ network: 'uplink', address: '10.9.0.10' }], publish: [{ port: 80 }, { port: 443, hostPort: 8443 }, { port: 53, protocol: 'udp' }] },
    ],
  );

  it("names a machine's published ports, in Mermaid and in the SVG", () => {
    expect(rolesOf(published, published.machines[1]!)).toEqual(['publishes 80, 443 as 8443, 53/udp']);
    expect(toMermaid(published)).toContain('m_web["web<br/><i>publishes 80, 443 as 8443, 53/udp</i>"]');
    expect(toSvg(published)).toContain('>publishes 80, 443 as 8443, 53/udp</text>');
  });

  it("puts a multi-homed machine's interface labels right of all its lines, so none crosses a label", () => {
    const svg = toSvg(published);
    const gwLines = [...svg.matchAll(/<line x1="([\d.]+)" y1="\d+" x2="[\d.]+" y2="\d+" stroke="[^"]+" stroke-width="2"\/>/g)].map((m) => Number(m[1])).slice(0, 3);
    const labels = ['host0 10.9.0.254 ↑', 'users 192.168.0.254', 'staff 192.168.1.254'].map((text) => Number(new RegExp(`<text x="([\\d.]+)" y="\\d+" class="small">${text}</text>`).exec(svg)![1]));
    for (const x of labels) expect(x).toBeGreaterThan(Math.max(...gwLines));
  });
});
