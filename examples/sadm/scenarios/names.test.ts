import { expect, it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

const lab = await useLab();

it('resolves the servers by name on every network', async () => {
  for (const client of ['r00p01', 'web', 'alien01', 'gw']) {
    expect(await lab.machine(client).resolve('web.prolo')).toBe('192.168.1.10');
    expect(await lab.machine(client).resolve('concours.prolo')).toBe('192.168.1.10');
  }
});

it("answers with the address on the asker's own network for a machine on several", async () => {
  expect(await lab.machine('r00p01').resolve('rhfs.prolo')).toBe('192.168.0.20');
  expect(await lab.machine('web').resolve('rhfs.prolo')).toBe('192.168.1.20');
});

it('names the contestants from their DHCP leases', async () => {
  const address = /inet (\S+)\//.exec(await lab.machine('r00p02').succeed('ip -4 -o address show dev host0'))![1];
  expect(await lab.machine('r00p01').resolve('r00p02.prolo')).toBe(address);
});
