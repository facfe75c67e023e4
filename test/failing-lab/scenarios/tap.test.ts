import { tapChecks, useLab } from '../../../lib/scenario/harness.js';

const lab = await useLab();
await tapChecks(lab, 'solo', 'checks/check_solo.sh');
