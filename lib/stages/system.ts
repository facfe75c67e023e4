import { createHash } from 'node:crypto';
import { defineStage } from './define.js';

/**
 * The built-in first stage of every machine: its identity (hostname, machine-id), its zone
 * address (static or DHCP, through systemd-networkd) and its resolver (the zone's DNS).
 */
export default defineStage({
  inputs: (lab) => ({
    lab: lab.config.name,
    machine: lab.machine.name,
    address: lab.machine.address,
    domain: lab.config.zone.domain,
    router: lab.config.zone.hostAddress,
    prefixLength: lab.prefixLength,
    dns: lab.dnsAddress ?? null,
  }),
  async run(ctx) {
    const { machine, config } = ctx.lab;
    const domain = config.zone.domain;
    const machineId = createHash('sha256').update(`${config.name}/${machine.name}`).digest('hex').slice(0, 32);
    await ctx.writeFile('/etc/hostname', `${machine.name}\n`);
    await ctx.writeFile('/etc/machine-id', `${machineId}\n`);
    // A static machine names its real address; a DHCP one is named by the zone's DNS from its lease.
    const own = machine.address === 'dhcp' ? '' : `${machine.address} ${machine.name}.${domain} ${machine.name}\n`;
    await ctx.writeFile('/etc/hosts', `127.0.0.1 localhost\n${own}`);
    const network =
      machine.address === 'dhcp'
        ? ['DHCP=ipv4', '', '[DHCPv4]', 'ClientIdentifier=mac', 'SendHostname=yes', 'UseDNS=no', 'UseHostname=no']
        : [`Address=${machine.address}/${ctx.lab.prefixLength}`, `Gateway=${config.zone.hostAddress}`];
    // Sorts before systemd's own 80-container-host0.network, which would otherwise win.
    await ctx.writeFile(
      '/etc/systemd/network/10-lab-zone.network',
      ['[Match]', 'Name=host0', '', '[Network]', 'LinkLocalAddressing=no', 'IPv6AcceptRA=no', ...network, ''].join('\n'),
    );
    const isDnsServer = config.zone.dnsMachine === machine.name;
    const nameserver = isDnsServer ? '127.0.0.1' : ctx.lab.dnsAddress;
    await ctx.writeFile('/etc/resolv.conf', `${nameserver ? `nameserver ${nameserver}\n` : ''}search ${domain}\n`);
    await ctx.enable('systemd-networkd');
  },
});
