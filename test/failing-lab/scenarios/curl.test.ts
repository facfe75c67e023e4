import { it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

const lab = await useLab();
it('curls a name that does not exist', () => lab.machine('solo').curl('http://nosuch.prolo/'));
