import type { Topology } from '../../lib/config/topology.js';
import { defineStage } from '../../lib/stages/define.js';
import { SHELL_FIXTURES } from '../../lib/stages/shell.js';

/**
 * dnsmasq's netboot settings for gw, on every network it serves DHCP on: TFTP with iPXE for
 * legacy PXE ROMs, the iPXE script over HTTP for iPXE (qemu's ROM, or the chained undionly.kpxe).
 * Each vm's name by its MAC (the name it registers with) is the dns stage's.
 */
export function netbootDnsmasq(topology: Topology, gw: string): string {
  const own = topology.machines.find((m) => m.name === gw)!.interfaces.filter((i) => i.address !== 'dhcp');
  const lines = [
    '# Managed by lab: netboot (PXE, TFTP, iPXE over HTTP) for the machines gw leases addresses to.',
    'enable-tftp',
    'tftp-root=/srv/tftp',
    // iPXE says so in option 175: it gets the script; anything else gets iPXE first.
    'dhcp-match=set:ipxe,175',
  ];
  for (const iface of own) {
    lines.push(`dhcp-boot=tag:${iface.network},tag:!ipxe,undionly.kpxe,gw,${iface.address}`, `dhcp-boot=tag:${iface.network},tag:ipxe,http://${iface.address}/boot.ipxe`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * gw netboots the lab's vms (SADM's contestant machines): PXE and TFTP from dnsmasq (the dns stage's,
 * before this one), and an HTTP service with the iPXE script, a Debian kernel and an initramfs of
 * busybox that leases, registers (POST /register) and says so on the serial console.
 */
export default defineStage({
  packages: ['python3', 'ipxe'],
  fixtures: ['gw/netboot/build.sh', 'gw/netboot/init', 'gw/netboot/udhcpc.script', 'gw/netboot/server.py', 'gw/netboot/netboot-http.service'],
  inputs: (lab) => netbootDnsmasq(lab.topology, lab.machine.name),
  async run(ctx) {
    const files = ['gw/netboot/init', 'gw/netboot/udhcpc.script', 'gw/netboot/server.py', 'gw/netboot/netboot-http.service'];
    await ctx.script(await ctx.fixture('gw/netboot/build.sh'), files, { LAB_FIXTURES: SHELL_FIXTURES });
    await ctx.writeFile('/etc/dnsmasq.d/netboot.conf', netbootDnsmasq(ctx.lab.topology, ctx.lab.machine.name));
    await ctx.enable('netboot-http');
  },
  async check(machine) {
    await machine.waitForUnit('netboot-http');
    await machine.waitForOpenPort(80);
    await machine.waitUntilSucceeds('ss -Hlun "sport = :69" | grep -q .'); // TFTP, from dnsmasq
  },
});
