import { expect, it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

const lab = await useLab();

// What SADM's checks assert after the plays: every unit the roles set up, enabled and active.
it.each([
  ['gw', ['named', 'dnsmasq', 'postgresql', 'ssh', 'systemd-networkd']],
  ['web', ['nginx', 'concours', 'ssh']],
  ['rhfs', ['rpcbind', 'nfs-ganesha', 'ssh']],
])('has the services of %s enabled and active', async (machine, units) => {
  for (const unit of units) await expect(lab.machine(machine)).toHaveServiceEnabledAndActive(unit);
});

it("answers for mdb on gw, from gw's own bind", async () => {
  const gw = lab.machine('gw');
  expect(await gw.succeed(['host', 'mdb.prolo'])).toMatch(/mdb\.prolo is an alias for gw\.prolo\.\n(gw\.prolo has address [\d.]+\n){3}/);
  expect(await lab.machine('r00p01').succeed(['host', 'concours.prolo'])).toContain('web.prolo has address 192.168.1.10');
});

it('serves the web app through gw to a contestant, with every machine lab registered in mdb', async () => {
  const reply = await lab.machine('r00p01').curl('http://concours.prolo/machines', { expectStatus: 200 });
  const machines = JSON.parse(reply.body) as { hostname: string; mac: string; ip: string; mtype: string }[];
  const topology = lab.lab.topology.machines;
  expect(machines.map((m) => m.hostname)).toEqual(topology.map((m) => m.name).sort());
  const r00p01 = machines.find((m) => m.hostname === 'r00p01')!;
  expect(r00p01).toEqual({ hostname: 'r00p01', mac: topology.find((m) => m.name === 'r00p01')!.interfaces[0]!.mac, ip: '192.168.0.101', mtype: 'user' });
});
