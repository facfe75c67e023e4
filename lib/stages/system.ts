import { createHash } from 'node:crypto';
import { defineStage, type LabView } from './define.js';

/**
 * A machine's identity as files of its root: hostname, machine-id, hosts, a networkd file per
 * interface (static or DHCP, its MAC, its default route through the network's router or the host on
 * a NAT'ed network, forwarding when it routes) and its resolver. The system stage writes them into
 * the machine's root; a diskless machine gets them bound read-only over the root it shares.
 */
export function identityFiles(lab: LabView): { path: string; content: string }[] {
  const { machine, config, topology, self } = lab;
  const domain = topology.domain;
  const machineId = createHash('sha256').update(`${config.name}/${machine.name}`).digest('hex').slice(0, 32);
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

/** The built-in first stage of every machine with a root of its own: its identity, and networkd enabled. */
export default defineStage({
  inputs: (lab) => ({
    lab: lab.config.name,
    machine: lab.machine.name,
    domain: lab.topology.domain,
    interfaces: lab.self.interfaces.map(({ hostLink: _, ...iface }) => iface),
    networks: lab.topology.networks.filter((n) => lab.self.interfaces.some((i) => i.network === n.name)).map((n) => [n.name, n.prefixLength, n.gateway ?? null]),
    router: lab.self.router,
    dns: lab.dnsAddress ?? null,
    dnsMachine: lab.topology.dnsMachine ?? null,
  }),
  async run(ctx) {
    for (const file of identityFiles(ctx.lab)) await ctx.writeFile(file.path, file.content);
    await ctx.enable('systemd-networkd');
  },
});
