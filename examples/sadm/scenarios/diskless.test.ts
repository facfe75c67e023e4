import { describe, expect, it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

// The room's diskless machines, as SADM checks its contestant machines: a sample of them (the
// first, one in the middle, the last), whatever the size of the room.
const lab = await useLab();
const room = lab.lab.topology.machines.filter((m) => m.kind === 'diskless');
const sample = [...new Set([room[0]!, room[Math.floor(room.length / 2)]!, room.at(-1)!])];
const gw = lab.machine('gw');

describe.each(sample.map((m) => [m.name, m]))('%s, a diskless machine of the room', (name, machine) => {
  const pc = lab.machine(name);

  it('has its lease from gw by its own MAC, and gw names it', async () => {
    const { mac } = machine.interfaces[0]!;
    expect(await pc.succeed('cat /sys/class/net/host0/address')).toBe(`${mac}\n`);
    const address = /inet (192\.168\.0\.\d+)\//.exec(await pc.succeed('ip -4 -o address show dev host0'))?.[1];
    expect(address).toBeDefined();
    expect(await gw.succeed('cat /var/lib/misc/dnsmasq.leases')).toMatch(new RegExp(` ${mac} ${address!.replaceAll('.', '\\.')} ${name} `));
    expect(await lab.machine('web').resolve(`${name}.prolo`)).toBe(address);
    expect(await pc.succeed('hostname')).toBe(`${name}\n`);
  });

  it("runs on rhfs's root, read-only, with /home writable", async () => {
    expect(await pc.fail('touch /etc/lab-written')).toContain('Read-only file system');
    expect(await pc.succeed('findmnt -n -o OPTIONS /')).toMatch(/^ro,/);
    await pc.succeed('touch /home/lab-written && rm /home/lab-written');
    expect(await pc.succeed('systemctl is-system-running')).toBe('running\n');
  });

  it('reaches the contest web app through gw', async () => {
    expect(await pc.succeed('ip route show default')).toContain('via 192.168.0.254');
    expect((await pc.curl('http://concours.prolo/', { expectStatus: 200 })).body).toContain('concours.prolo');
  });
});

it('gives each machine of the sample its own machine-id', async () => {
  const ids = await Promise.all(sample.map((m) => lab.machine(m.name).succeed('cat /etc/machine-id')));
  expect(new Set(ids).size).toBe(sample.length);
});
