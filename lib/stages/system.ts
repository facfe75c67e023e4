import { createHash } from 'node:crypto';
import { defineStage } from './define.js';

/**
 * The built-in first stage of every machine: its identity (hostname, machine-id), each of its
 * interfaces (static or DHCP, through systemd-networkd), its default route (through the network's
 * router, or the host on a NAT'ed network), forwarding when it routes, and its resolver.
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
  }),
  async run(ctx) {
    const { machine, topology, self } = ctx.lab;
    const domain = topology.domain;
    const machineId = createHash('sha256').update(`${domain}/${machine.name}`).digest('hex').slice(0, 32);
    await ctx.writeFile('/etc/hostname', `${machine.name}\n`);
    await ctx.writeFile('/etc/machine-id', `${machineId}\n`);
    // Static addresses name the machine; a DHCP one is named by the DNS machine from its lease.
    const own = self.interfaces.filter((i) => i.address !== 'dhcp').map((i) => `${i.address} ${machine.name}.${domain} ${machine.name}\n`);
    await ctx.writeFile('/etc/hosts', `127.0.0.1 localhost\n${own.join('')}`);
    for (const iface of self.interfaces) {
      const network = topology.networks.find((n) => n.name === iface.network)!;
      const gateway = iface.defaultRoute ? network.gateway : undefined;
      const settings =
        iface.address === 'dhcp'
          ? ['DHCP=ipv4', '', '[DHCPv4]', 'ClientIdentifier=mac', 'SendHostname=yes', 'UseDNS=no', 'UseHostname=no', `UseGateway=${iface.defaultRoute ? 'yes' : 'no'}`]
          : [`Address=${iface.address}/${network.prefixLength}`, ...(gateway ? [`Gateway=${gateway}`] : [])];
      // Sorts before systemd's own 80-container-host0.network, which would otherwise win.
      await ctx.writeFile(
        `/etc/systemd/network/10-lab-${iface.name}.network`,
        ['[Match]', `Name=${iface.name}`, '', '[Link]', `MACAddress=${iface.mac}`, '', '[Network]', 'LinkLocalAddressing=no', 'IPv6AcceptRA=no', ...(self.router ? ['IPForward=ipv4'] : []), ...settings, ''].join('\n'),
      );
    }
    const nameserver = topology.dnsMachine === machine.name ? '127.0.0.1' : ctx.lab.dnsAddress;
    await ctx.writeFile('/etc/resolv.conf', `${nameserver ? `nameserver ${nameserver}\n` : ''}search ${domain}\n`);
    await ctx.enable('systemd-networkd');
  },
});
