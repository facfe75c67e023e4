import { expect, it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

const lab = await useLab();
it('finds the marker', async () => {
  await expect(lab.machine('solo')).toHaveFile('/etc/solo-marker');
});
