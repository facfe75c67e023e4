import { describe, it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

const lab = await useLab();

describe('every machine pings every other by name', () => {
  for (const from of lab.machineNames) {
    for (const to of lab.machineNames.filter((name) => name !== from)) {
      it(`${from} pings ${to}`, () => lab.machine(from).ping(to));
    }
  }
});
