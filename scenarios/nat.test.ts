import { describe, expect, it } from 'vitest';
import { useLab } from '../lib/scenario/harness.js';

const lab = await useLab();

describe('NAT to the (simulated) internet', () => {
  for (const machine of lab.machineNames) {
    it(`${machine} reaches it and is seen there with the lab's uplink address`, async () => {
      const reply = await lab.machine(machine).curl(`http://${lab.internet.address}/`, { expectStatus: 200 });
      expect(reply.body.trim()).toBe(lab.internet.uplinkAddress);
    });
  }
});
