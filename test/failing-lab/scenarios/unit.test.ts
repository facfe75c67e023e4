import { it } from 'vitest';
import { useLab } from '../../../lib/scenario/harness.js';

const lab = await useLab();
it('waits for a unit that failed', () => lab.machine('solo').waitForUnit('doomed.service', 60_000));
