import { describe, expect, it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

const lab = await useLab();
const gw = lab.machine('gw');

/** The address the machine really has on the zone. */
async function addressOf(machine: string): Promise<string> {
  const out = await lab.machine(machine).succeed(['ip', '-4', '-o', 'address', 'show', 'dev', 'host0']);
  return /inet (\d+\.\d+\.\d+\.\d+)/.exec(out)![1];
}

describe('gw answers for the zone', () => {
  for (const machine of lab.machineNames) {
    it(`${machine}.${lab.domain} is the address ${machine} has`, async () => {
      expect(await gw.resolve(`${machine}.${lab.domain}`)).toBe(await addressOf(machine));
    });
  }

  it(`the proxy's names (silicon.${lab.domain}) point to web`, async () => {
    expect(await gw.resolve(`silicon.${lab.domain}`)).toBe(await addressOf('web'));
  });

  it('every machine resolves through gw', async () => {
    for (const machine of lab.machineNames) {
      expect(await lab.machine(machine).resolve(`gw.${lab.domain}`)).toBe(await addressOf('gw'));
    }
  });
});
