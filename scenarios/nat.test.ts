import { describe, expect, it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

const lab = await useLab();
const internet = lab.internet;

// In host mode there is only something to reach when the config names it (network.internet).
describe.skipIf(!internet)('NAT to the internet (simulated in sandbox mode)', () => {
  for (const machine of lab.machineNames) {
    it(`${machine} reaches it and is seen there with the lab's uplink address`, async () => {
      const reply = await lab.machine(machine).curl(`http://${internet!.address}/`, { expectStatus: 200 });
      expect(reply.body.trim()).toBe(internet!.uplinkAddress);
    });
  }
});
