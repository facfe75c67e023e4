import { nthAddress, parseSubnet } from '../../lib/config/ip.js';
import { defineStage } from '../../lib/stages/define.js';

/** gw: dnsmasq answers DNS for the zone's domain and leases addresses to the other machines. */
export default defineStage({
  packages: ['dnsmasq'],
  fixtures: ['gw/dnsmasq.conf'],
  inputs: (lab) => ({ zone: lab.config.zone, machines: lab.config.machines.map((m) => [m.name, m.address]) }),
  async run(ctx) {
    const { config } = ctx.lab;
    const domain = config.zone.domain;
    const subnet = parseSubnet(config.zone.subnet);
    const records = config.machines.flatMap((m) => {
      const lines = m.address === 'dhcp' ? [] : [`host-record=${m.name}.${domain},${m.name},${m.address}`];
      // SADM: <name>.<domain> is served by machine web-<name>, through the proxy on `web`.
      const site = /^web-(.+)$/.exec(m.name)?.[1];
      if (site && config.machines.some((w) => w.name === 'web')) lines.push(`cname=${site}.${domain},web.${domain}`);
      return lines;
    });
    await ctx.template('gw/dnsmasq.conf', '/etc/dnsmasq.d/lab.conf', {
      domain,
      dhcpStart: nthAddress(subnet, Math.floor(subnet.size / 2)),
      dhcpEnd: nthAddress(subnet, subnet.size - 10),
      router: config.zone.hostAddress,
      dns: ctx.lab.machine.address,
      records: records.join('\n'),
    });
    await ctx.enable('dnsmasq');
  },
  async check(machine, lab) {
    await machine.waitForUnit('dnsmasq');
    await machine.waitUntilSucceeds(['getent', 'hosts', `${lab.machine.name}.${lab.config.zone.domain}`]);
  },
});
