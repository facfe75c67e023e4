import { tapChecks, useLab } from 'sadm-lab/scenario';

const lab = await useLab();
await tapChecks(lab, 'solo', 'checks/check_solo.sh');
