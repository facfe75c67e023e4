import { afterAll, describe, expect, it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

// SADM's netboot test: r00p03, a vm, boots from gw over the network, registers and says so.
const lab = await useLab();
const gw = lab.machine('gw');
const r00p03 = lab.machine('r00p03');
const mac = lab.lab.topology.machines.find((m) => m.name === 'r00p03')!.interfaces[0]!.mac!;
const MARKER = /LAB-NETBOOT-DONE name=r00p03 mac=(\S+) address=(\S+)/;
/** From qemu's start to the marker: a few seconds with KVM, some tens in software emulation on a busy host. */
const BOOT_MS = 240_000;

/** What gw saw of r00p03's boot: its lease, the boot files it fetched, its registration; and its console said so, iPXE's lines first. */
async function expectNetbooted(): Promise<void> {
  const line = await r00p03.waitForConsoleText(MARKER, BOOT_MS);
  const [, said, address] = MARKER.exec(line)!;
  expect(said).toBe(mac);
  // iPXE's own output, and the script's, in the console log before the kernel's (the marker is there already: no wait).
  await r00p03.waitForConsoleText(/iPXE initialising devices/, 1000);
  await r00p03.waitForConsoleText(`lab netboot: ${mac} booting from 192.168.0.254`, 1000);
  expect(await gw.succeed('cat /var/lib/misc/dnsmasq.leases')).toMatch(new RegExp(` ${mac} ${address!.replaceAll('.', '\\.')} r00p03 `));
  const http = await gw.succeed('cat /var/log/netboot/http.log');
  for (const file of ['/boot.ipxe', '/vmlinuz', '/initrd.img']) expect(http).toContain(`${address} "GET ${file} HTTP/1.1" 200`);
  expect(await gw.succeed('cat /var/lib/netboot/registered')).toMatch(new RegExp(`^${mac} r00p03 ${address!.replaceAll('.', '\\.')} `, 'm'));
}

afterAll(() => lab.up(), BOOT_MS);

describe('netboot of a contestant machine from gw', () => {
  it('gets a lease from gw, fetches its boot files from gw, registers with gw, and says so on its console', expectNetbooted, BOOT_MS);

  it('is resolved by name from another machine: gw leased it its name by its MAC', async () => {
    const address = MARKER.exec(await r00p03.waitForConsoleText(MARKER, BOOT_MS))![2];
    expect(await lab.machine('r00p01').resolve('r00p03.prolo')).toBe(address);
  });

  it('gets iPXE over TFTP from gw, as a legacy PXE ROM does', async () => {
    const r00p01 = lab.machine('r00p01');
    const fetched = await r00p01.succeed('curl -sS --max-time 20 tftp://gw.prolo/undionly.kpxe | sha256sum');
    expect(fetched.split(' ')[0]).toBe((await gw.succeed('sha256sum /srv/tftp/undionly.kpxe')).split(' ')[0]);
    expect(await gw.succeed('journalctl -u dnsmasq --no-pager')).toMatch(/sent \/srv\/tftp\/undionly\.kpxe to 192\.168\.0\./);
  });

  it('boots the same way again after gw is restored to its netboot stage', async () => {
    await lab.restore('gw@netboot'); // gw comes back with empty logs and no registration; r00p03 boots again
    await expectNetbooted();
  }, BOOT_MS * 2);
});
