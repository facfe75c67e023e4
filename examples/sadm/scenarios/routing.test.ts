import { expect, it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

const lab = await useLab();

it('lets a contestant reach the web sites by name, through gw', async () => {
  const r00p01 = lab.machine('r00p01');
  expect((await r00p01.curl('http://concours.prolo/', { expectStatus: 200 })).body).toContain('concours.prolo');
  expect((await r00p01.curl('http://home.prolo/', { expectStatus: 200 })).body).toContain('home.prolo');
});

it('refuses an alien machine on the contestants network (the firewall), and lets it reach the web', async () => {
  const alien = lab.machine('alien01');
  // rhfs's card on the contestants network, and a contestant: both behind gw's firewall.
  const refused = await alien.fail(['curl', '-sS', '--max-time', '3', 'http://192.168.0.20/']);
  expect(refused).toMatch(/Couldn't connect|No route to host|unreachable|prohibited/i);
  const contestant = await lab.machine('alien01').resolve('r00p01.prolo');
  await alien.fail(['ping', '-c', '1', '-W', '2', contestant]);
  expect((await alien.curl('http://concours.prolo/', { expectStatus: 200 })).body).toContain('concours.prolo');
});

it('has rhfs answer on both of its addresses', async () => {
  expect((await lab.machine('web').curl('http://192.168.1.20/', { expectStatus: 200 })).body).toBe('rhfs\n');
  expect((await lab.machine('r00p01').curl('http://192.168.0.20/', { expectStatus: 200 })).body).toBe('rhfs\n');
});

it('reaches the outside from the contestants network, through gw and the host', async () => {
  expect((await lab.machine('r00p01').curl('http://198.51.100.1/', { expectStatus: 200 })).body.trim()).toBe('198.51.100.2');
});
