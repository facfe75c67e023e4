import type { Topology, TopologyMachine, TopologyNetwork } from '../config/topology.js';

/**
 * The lab's topology drawn: Mermaid text (for Markdown and mermaid.live) and a self-made SVG (no
 * library, no script: the report stays one self-contained file). Pure: from the topology alone.
 */

const escapeXml = (text: string) => text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const id = (prefix: string, name: string) => `${prefix}_${name.replace(/[^A-Za-z0-9_]/g, '_')}`;

/** What a machine does for the lab, as short labels: vm, diskless, DNS/DHCP, router, published ports. */
export function rolesOf(topology: Topology, machine: TopologyMachine): string[] {
  const roles: string[] = machine.kind === 'vm' ? ['vm (qemu)'] : machine.root ? [`diskless (${machine.root.machine}:${machine.root.path})`] : [];
  if (topology.dnsMachine === machine.name) roles.push('DNS/DHCP');
  const routed = topology.networks.filter((n) => n.router === machine.name).map((n) => n.name);
  if (routed.length > 0) roles.push(`routes ${routed.join(', ')}`);
  const published = (machine.published ?? []).map((p) => `${p.port}${p.protocol === 'udp' ? '/udp' : ''}${p.hostPort === p.port ? '' : ` as ${p.hostPort}`}`);
  if (published.length > 0) roles.push(`publishes ${published.join(', ')}`);
  return roles;
}

function networkLabel(network: TopologyNetwork): string {
  const how = network.nat ? 'NAT by the host' : network.router ? `routed by ${network.router}` : 'isolated';
  return `${network.name} ${network.subnet} (${how})`;
}

const addressText = (address: string) => (address === 'dhcp' ? 'DHCP' : address);

export function toMermaid(topology: Topology): string {
  const lines = ['flowchart TB'];
  const natted = topology.networks.filter((n) => n.nat);
  if (natted.length > 0) lines.push('  host(["host: NAT to the outside"])');
  for (const network of topology.networks) lines.push(`  ${id('net', network.name)}{{"${networkLabel(network)}"}}`);
  for (const machine of topology.machines) {
    const roles = rolesOf(topology, machine);
    lines.push(`  ${id('m', machine.name)}["${machine.name}${roles.length ? `<br/><i>${roles.join('; ')}</i>` : ''}"]`);
  }
  for (const network of natted) lines.push(`  host ---|"${network.hostAddress ?? ''}"| ${id('net', network.name)}`);
  for (const machine of topology.machines) {
    for (const i of machine.interfaces) lines.push(`  ${id('m', machine.name)} ---|"${i.name} ${addressText(i.address)}${i.defaultRoute ? ' (default route)' : ''}"| ${id('net', i.network)}`);
  }
  return `${lines.join('\n')}\n`;
}

const COLUMN = 190;
const BOX_W = 160;
const BOX_H = 40;
const ROLE_LINE = 14;
const TOP = 30;
const BUS_GAP = 64;
const LEFT = 250;
const COLORS = ['#2b6cb0', '#2f855a', '#b7791f', '#9b2c2c', '#6b46c1', '#2c7a7b', '#c05621', '#4a5568'];

/**
 * Machines in a row (routers and the DNS machine first), networks as buses below them, a line from
 * each machine down to each network it has an interface on, with a dot and the interface's name and
 * address where it joins. The host, when it NATs a network, sits at the left of its buses.
 */
export function toSvg(topology: Topology): string {
  const machines = [...topology.machines].sort((a, b) => rank(topology, b) - rank(topology, a));
  const boxHeight = BOX_H + ROLE_LINE * Math.max(1, ...machines.map((m) => rolesOf(topology, m).length));
  const x = new Map(machines.map((m, index) => [m.name, LEFT + index * COLUMN]));
  const busY = new Map(topology.networks.map((n, index) => [n.name, TOP + boxHeight + 70 + index * BUS_GAP]));
  const color = new Map(topology.networks.map((n, index) => [n.name, COLORS[index % COLORS.length]!]));
  const width = LEFT + machines.length * COLUMN + 60; // room for the last machine's interface labels
  const height = TOP + boxHeight + 70 + topology.networks.length * BUS_GAP + 10;
  const parts: string[] = [];
  for (const network of topology.networks) {
    const y = busY.get(network.name)!;
    parts.push(
      `<line x1="10" y1="${y}" x2="${width - 10}" y2="${y}" stroke="${color.get(network.name)}" stroke-width="4"/>`,
      `<text x="12" y="${y - 8}" class="net" fill="${color.get(network.name)}">${escapeXml(networkLabel(network))}</text>`,
    );
    if (network.nat) parts.push(`<text x="12" y="${y + 18}" class="small">host ${escapeXml(network.hostAddress ?? '')} · bridge ${escapeXml(network.bridge)}</text>`);
    else parts.push(`<text x="12" y="${y + 18}" class="small">bridge ${escapeXml(network.bridge)}${network.gateway ? ` · gateway ${escapeXml(network.gateway)}` : ''}</text>`);
  }
  for (const machine of machines) {
    const left = x.get(machine.name)!;
    const center = left + BOX_W / 2;
    const roles = rolesOf(topology, machine);
    const lineX = (index: number) => center + (index - (machine.interfaces.length - 1) / 2) * 14;
    // Every label right of the machine's last line: a multi-homed machine's other lines cross none.
    const labelX = lineX(machine.interfaces.length - 1) + 7;
    machine.interfaces.forEach((i, index) => {
      const y = busY.get(i.network)!;
      parts.push(
        `<line x1="${lineX(index)}" y1="${TOP + boxHeight}" x2="${lineX(index)}" y2="${y}" stroke="${color.get(i.network)}" stroke-width="2"/>`,
        `<circle cx="${lineX(index)}" cy="${y}" r="5" fill="${color.get(i.network)}"/>`,
        `<text x="${labelX}" y="${y - 7}" class="small">${escapeXml(`${i.name} ${addressText(i.address)}`)}${i.defaultRoute ? ' ↑' : ''}</text>`,
      );
    });
    const lines = roles.length ? roles : [`${machine.interfaces.length} interface${machine.interfaces.length > 1 ? 's' : ''}`];
    parts.push(
      `<rect x="${left}" y="${TOP}" width="${BOX_W}" height="${boxHeight}" rx="6" class="${roles.length ? 'machine service' : 'machine'}"/>`,
      `<text x="${center}" y="${TOP + 22}" class="name" text-anchor="middle">${escapeXml(machine.name)}</text>`,
      ...lines.map((line, index) => `<text x="${center}" y="${TOP + 40 + index * ROLE_LINE}" class="small" text-anchor="middle">${escapeXml(line)}</text>`),
    );
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" font-family="system-ui, sans-serif" role="img" aria-label="lab topology">`,
    '<style>.machine{fill:#fff;stroke:#333;stroke-width:1.5}.machine.service{fill:#fffbe6}.name{font-size:15px;font-weight:600}.small{font-size:11px;fill:#444;paint-order:stroke;stroke:#fcfcfc;stroke-width:3px}.net{font-size:13px;font-weight:600}</style>',
    `<rect width="${width}" height="${height}" fill="#fcfcfc"/>`,
    ...parts,
    `<text x="${width - 12}" y="${height - 8}" class="small" text-anchor="end">↑ default route · domain ${escapeXml(topology.domain)}</text>`,
    '</svg>',
  ].join('\n');
}

/** DNS machine first, then routers, then the others as configured. */
function rank(topology: Topology, machine: TopologyMachine): number {
  return (topology.dnsMachine === machine.name ? 2 : 0) + (machine.router ? 1 : 0);
}

export function toHtmlPage(title: string, topology: Topology): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeXml(title)}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}.graph{overflow:auto;border:1px solid #ddd;display:inline-block;max-width:100%}pre{background:#f4f4f4;padding:.6em}</style>
</head><body>
<h1>${escapeXml(title)}</h1>
<div class="graph">${toSvg(topology)}</div>
<details><summary>Mermaid source</summary><pre>${escapeXml(toMermaid(topology))}</pre></details>
</body></html>
`;
}
