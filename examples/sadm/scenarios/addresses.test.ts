import { expect, it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

const lab = await useLab();

/** Every interface of every machine, with its network's subnet prefix and its static address. */
const expected: [machine: string, iface: string, address: RegExp][] = [
  ['gw', 'uplink', /^10\.9\.0\.254$/],
  ['gw', 'servers', /^192\.168\.1\.254$/],
  ['gw', 'users', /^192\.168\.0\.254$/],
  ['gw', 'alien', /^192\.168\.250\.254$/],
  ['web', 'host0', /^192\.168\.1\.10$/],
  ['rhfs', 'host0', /^192\.168\.1\.20$/],
  ['rhfs', 'host1', /^192\.168\.0\.20$/],
  ['r00p01', 'host0', /^192\.168\.0\.\d+$/],
  ['r00p02', 'host0', /^192\.168\.0\.\d+$/],
  ['alien01', 'host0', /^192\.168\.250\.\d+$/],
];

for (const [machine, iface, address] of expected) {
  it(`${machine} has its address on ${iface}`, async () => {
    const out = await lab.machine(machine).succeed(['ip', '-4', '-o', 'address', 'show', 'dev', iface]);
    expect(/inet (\d+\.\d+\.\d+\.\d+)\//.exec(out)?.[1]).toMatch(address);
  });
}

it('routes the users network through gw', async () => {
  expect(await lab.machine('r00p01').succeed('ip route show default')).toContain('via 192.168.0.254');
  expect(await lab.machine('web').succeed('ip route show default')).toContain('via 192.168.1.254');
  expect(await lab.machine('gw').succeed('ip route show default')).toContain('via 10.9.0.1');
});
