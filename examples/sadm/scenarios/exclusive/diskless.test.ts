import { expect, it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

// A diskless machine keeps nothing of a session: rhfs restored, the room boots again on its root
// with /home empty, as a contestant machine rebooted between two sessions.
const lab = await useLab();
const pc = lab.machine(lab.lab.topology.machines.find((m) => m.kind === 'diskless')!.name);

it('comes back with /home empty when rhfs is restored (the room boots again on its root)', async () => {
  await pc.succeed('mkdir -p /home/contestant && echo draft > /home/contestant/solution.c');
  await lab.restore('rhfs@export');
  // A new tmpfs: the machine booted again.
  expect(await pc.succeed('ls -A /home')).toBe('');
  await pc.succeed('touch /home/lab-written');
});
