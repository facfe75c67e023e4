import { it } from 'vitest';
import { useLab } from '../../../lib/scenario/harness.js';

const lab = await useLab();
it('curls a name that does not exist', () => lab.machine('solo').curl('http://nosuch.prolo/'));
