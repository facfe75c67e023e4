import { expect, it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

const lab = await useLab();

it("leases a contestant its reserved address, by the MAC in lab's inventory", async () => {
  const r00p01 = lab.machine('r00p01');
  // A DHCP exchange from the machine's card, that changes nothing on it: the script only prints the offer.
  await r00p01.succeed(['sh', '-c', 'printf "#!/bin/sh\\n[ \\"\\$1\\" = bound ] && echo \\"lease \\$ip router \\$router\\"\\nexit 0\\n" > /run/udhcpc.sh && chmod +x /run/udhcpc.sh']);
  const lease = await r00p01.succeed(['busybox', 'udhcpc', '-f', '-q', '-n', '-t', '5', '-T', '1', '-i', 'host0', '-s', '/run/udhcpc.sh']);
  expect(lease).toContain('lease 192.168.0.101 router 192.168.0.254');
});

it('serves the PXE boot files from gw over TFTP', async () => {
  const r00p01 = lab.machine('r00p01');
  await r00p01.succeed(['busybox', 'tftp', '-g', '-r', 'undionly.kpxe', '-l', '/run/undionly.kpxe', '192.168.0.254']);
  const fetched = await r00p01.succeed(['sha256sum', '/run/undionly.kpxe']);
  const served = await lab.machine('gw').succeed(['sha256sum', '/usr/lib/ipxe/undionly.kpxe']);
  expect(fetched.split(' ')[0]).toBe(served.split(' ')[0]);
  expect(await r00p01.succeed(['busybox', 'tftp', '-g', '-r', 'boot.ipxe', '-l', '-', '192.168.0.254'])).toContain('chain http://gw.prolo/boot/${mac}');
});

it("lists rhfs's exports to the contestants network", async () => {
  const exports = await lab.machine('r00p01').succeed(['showmount', '-e', 'rhfs.prolo']);
  expect(exports).toMatch(/^\/export\/nfsroot_ro\s+192\.168\.0\.0\/24$/m);
});
