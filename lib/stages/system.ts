import { createHash } from 'node:crypto';
import { PACKAGE_PROXY_PORT, packageProxyAddress } from '../network/package-proxy-policy.js';
import { defineStage, type LabView } from './define.js';

/**
 * apt in the running machine goes through the lab's package proxy; in a build step (a stopped
 * root, nothing booted: no /run/systemd/system) it goes straight out through the host's network,
 * as stage packages always have. apt asks the script for each host it fetches from.
 */
export const APT_PROXY_SCRIPT = '/usr/local/sbin/lab-apt-proxy';

export function aptProxyFiles(proxy: string): { path: string; content: string; mode: number }[] {
  return [
    { path: '/etc/apt/apt.conf.d/80lab-proxy', content: `// lab's package proxy, for apt in the running machine (see ${APT_PROXY_SCRIPT}).\nAcquire::http::Proxy-Auto-Detect "${APT_PROXY_SCRIPT}";\n`, mode: 0o644 },
    { path: APT_PROXY_SCRIPT, content: `#!/bin/sh\n# Written by lab: its package proxy once the machine runs, the host's network in a build step.\nif [ -d /run/systemd/system ]; then echo http://${proxy}/; else echo DIRECT; fi\n`, mode: 0o755 },
  ];
}

/** Where the machine's apt finds the proxy (address:port), for an image with apt. */
function aptProxyOf(lab: LabView): string | undefined {
  const address = packageProxyAddress(lab.config, lab.topology, lab.self);
  return address && lab.config.image.distribution !== 'arch' ? `${address}:${PACKAGE_PROXY_PORT}` : undefined;
}

/**
 * A machine's identity as files of its root: hostname, machine-id, hosts, a networkd file per
 * interface (static or DHCP, its MAC, its default route through the network's router or the host on
 * a NAT'ed network, forwarding when it routes) and its resolver. The system stage writes them into
 * the machine's root; a diskless machine gets them bound read-only over the root it shares.
 */
export function identityFiles(lab: LabView): { path: string; content: string }[] {
  const { machine, topology, self } = lab;
  const domain = topology.domain;
  const machineId = createHash('sha256').update(`${domain}/${machine.name}`).digest('hex').slice(0, 32);
  // Static addresses name the machine; a DHCP one is named by the DNS machine from its lease.
  const own = self.interfaces.filter((i) => i.address !== 'dhcp').map((i) => `${i.address} ${machine.name}.${domain} ${machine.name}\n`);
  const networks = self.interfaces.map((iface) => {
    const network = topology.networks.find((n) => n.name === iface.network)!;
    const gateway = iface.defaultRoute ? network.gateway : undefined;
    const settings =
      iface.address === 'dhcp'
        ? ['DHCP=ipv4', '', '[DHCPv4]', 'ClientIdentifier=mac', 'SendHostname=yes', 'UseDNS=no', 'UseHostname=no', `UseGateway=${iface.defaultRoute ? 'yes' : 'no'}`]
        : [`Address=${iface.address}/${network.prefixLength}`, ...(gateway ? [`Gateway=${gateway}`] : [])];
    // Sorts before systemd's own 80-container-host0.network, which would otherwise win.
    return {
      path: `${NETWORKD_DIR}/10-lab-${iface.name}.network`,
      content: ['[Match]', `Name=${iface.name}`, '', '[Link]', `MACAddress=${iface.mac}`, '', '[Network]', 'LinkLocalAddressing=no', 'IPv6AcceptRA=no', ...(self.router ? ['IPForward=ipv4'] : []), ...settings, ''].join('\n'),
    };
  });
  const nameserver = topology.dnsMachine === machine.name ? '127.0.0.1' : lab.dnsAddress;
  return [
    { path: '/etc/hostname', content: `${machine.name}\n` },
    { path: '/etc/machine-id', content: `${machineId}\n` },
    { path: '/etc/hosts', content: `127.0.0.1 localhost\n${own.join('')}` },
    ...networks,
    { path: '/etc/resolv.conf', content: `${nameserver ? `nameserver ${nameserver}\n` : ''}search ${domain}\n` },
  ];
}

/** Where the identity's networkd files are. */
export const NETWORKD_DIR = '/etc/systemd/network';

/**
 * The built-in first stage of every machine with a root of its own: its identity, networkd enabled,
 * and apt's way to the lab's package proxy.
 */
export default defineStage({
  // Not the lab's name: labs of one config, whatever their names, share this stage's snapshots (lab cache pull).
  inputs: (lab) => ({
    machine: lab.machine.name,
    domain: lab.topology.domain,
    interfaces: lab.self.interfaces.map(({ hostLink: _, ...iface }) => iface),
    networks: lab.topology.networks.filter((n) => lab.self.interfaces.some((i) => i.network === n.name)).map((n) => [n.name, n.prefixLength, n.gateway ?? null]),
    router: lab.self.router,
    dns: lab.dnsAddress ?? null,
    dnsMachine: lab.topology.dnsMachine ?? null,
    aptProxy: aptProxyOf(lab) ?? null,
  }),
  async run(ctx) {
    for (const file of identityFiles(ctx.lab)) await ctx.writeFile(file.path, file.content);
    const proxy = aptProxyOf(ctx.lab);
    for (const file of proxy ? aptProxyFiles(proxy) : []) await ctx.writeFile(file.path, file.content, { mode: file.mode });
    await ctx.enable('systemd-networkd');
  },
});
