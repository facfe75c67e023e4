import { describe, expect, it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';
import { expectSniRouting } from '../support/proxy.js';

// web at the stage before its proxy: haproxy runs with the distribution's configuration.
const lab = await useLab({ restore: 'web@haproxy' });

describe('restore: web before its proxy stage', () => {
  it('does not route HTTPS by SNI, the way it should not', async () => {
    await expect(expectSniRouting(lab)).rejects.toThrow(/curl https:\/\/silicon\.prolo\/ failed/);
  });

  it('routes again once lab up has brought web back', async () => {
    await lab.up();
    await expectSniRouting(lab);
  });
});
