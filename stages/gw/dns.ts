import type { LabView } from '../../lib/stages/define.js';
import { defineStage } from '../../lib/stages/define.js';

/** What gw's dnsmasq is told: its records (`hosts`) and the values of fixtures/gw/dnsmasq.conf. Pure: tested without a machine. */
export function dnsmasqSettings(lab: LabView): { hosts: string; values: Record<string, string> } {
  const { topology, self, config, domain } = lab;
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
  // A vm does not know its name (a netbooted one has no disk to keep it): its lease gives it, by the
  // MAC lab gave its card, and dnsmasq answers <vm>.<domain> from that lease.
  const vms = topology.machines
    .filter((m) => m.kind === 'vm')
    .flatMap((vm) => vm.interfaces.filter((i) => served.some((own) => own.network === i.network)).map((i) => `dhcp-host=${i.mac},${vm.name}`));
  const cnames = config.machines.flatMap((m) => {
    const lines = m.aliases.map((alias) => `cname=${alias}.${domain},${m.name}.${domain}`);
    // SADM: <name>.<domain> is served by machine web-<name>, through the proxy on `web`.
    const site = /^web-(.+)$/.exec(m.name)?.[1];
    if (site && config.machines.some((w) => w.name === 'web')) lines.push(`cname=${site}.${domain},web.${domain}`);
    return lines;
  });
  return {
    hosts: `${hosts.join('\n')}\n`,
    values: { domain, interfaces: served.map((i) => `interface=${i.name}`).join('\n'), dhcp: dhcp.join('\n'), vms: vms.join('\n'), cnames: cnames.join('\n') },
  };
}

/** gw: dnsmasq answers DNS for the lab's domain and leases addresses on every network gw has an interface on, each vm its name by its MAC. */
export default defineStage({
  packages: ['dnsmasq'],
  fixtures: ['gw/dnsmasq.conf'],
  inputs: (lab) => dnsmasqSettings(lab),
  async run(ctx) {
    const { hosts, values } = dnsmasqSettings(ctx.lab);
    await ctx.writeFile('/etc/dnsmasq.lab.hosts', hosts);
    await ctx.template('gw/dnsmasq.conf', '/etc/dnsmasq.d/lab.conf', values);
    await ctx.enable('dnsmasq');
  },
  async check(machine, lab) {
    await machine.waitForUnit('dnsmasq');
    await machine.waitUntilSucceeds(['getent', 'hosts', `${lab.machine.name}.${lab.domain}`]);
  },
});
