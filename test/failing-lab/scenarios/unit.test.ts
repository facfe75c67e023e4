import { it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

const lab = await useLab();
it('waits for a unit that failed', () => lab.machine('solo').waitForUnit('doomed.service', 60_000));
