import { defineStage } from '../../lib/stages/define.js';

/** gw: dnsmasq answers DNS for the lab's domain and leases addresses on every network gw has an interface on. */
export default defineStage({
  packages: ['dnsmasq'],
  fixtures: ['gw/dnsmasq.conf'],
  inputs: (lab) => ({
    domain: lab.topology.domain,
    networks: lab.topology.networks,
    machines: lab.topology.machines.map((m) => [m.name, m.interfaces.map((i) => [i.network, i.name, i.address])]),
    aliases: lab.config.machines.map((m) => [m.name, m.aliases]),
  }),
  async run(ctx) {
    const { topology, self, config } = ctx.lab;
    const domain = topology.domain;
    const served = self.interfaces.filter((i) => i.address !== 'dhcp');
    const dhcp = served.flatMap((iface) => {
      const network = topology.networks.find((n) => n.name === iface.network)!;
      const tag = network.name;
      return [
        `# network ${network.name} (${network.subnet}) on ${iface.name}`,
        `dhcp-range=set:${tag},${network.dhcp!.start},${network.dhcp!.end},12h`,
        ...(network.gateway ? [`dhcp-option=tag:${tag},option:router,${network.gateway}`] : [`dhcp-option=tag:${tag},option:router`]),
        `dhcp-option=tag:${tag},option:dns-server,${iface.address}`,
      ];
    });
    // Every static address of every machine: a machine on several networks has a line for each.
    const hosts = topology.machines.flatMap((m) => m.interfaces.filter((i) => i.address !== 'dhcp').map((i) => `${i.address} ${m.name}.${domain} ${m.name}`));
    const cnames = config.machines.flatMap((m) => {
      const lines = m.aliases.map((alias) => `cname=${alias}.${domain},${m.name}.${domain}`);
      // SADM: <name>.<domain> is served by machine web-<name>, through the proxy on `web`.
      const site = /^web-(.+)$/.exec(m.name)?.[1];
      if (site && config.machines.some((w) => w.name === 'web')) lines.push(`cname=${site}.${domain},web.${domain}`);
      return lines;
    });
    await ctx.writeFile('/etc/dnsmasq.lab.hosts', `${hosts.join('\n')}\n`);
    await ctx.template('gw/dnsmasq.conf', '/etc/dnsmasq.d/lab.conf', {
      domain,
      interfaces: served.map((i) => `interface=${i.name}`).join('\n'),
      dhcp: dhcp.join('\n'),
      cnames: cnames.join('\n'),
    });
    await ctx.enable('dnsmasq');
  },
  async check(machine, lab) {
    await machine.waitForUnit('dnsmasq');
    await machine.waitUntilSucceeds(['getent', 'hosts', `${lab.machine.name}.${lab.topology.domain}`]);
  },
});
