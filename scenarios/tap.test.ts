import { useLab, tapChecks } from 'sadm-lab/scenario';

// In-machine checks in the shape of SADM's checks/check_*.sh: each TAP point is a test of its own.
const lab = await useLab();
await tapChecks(lab, 'gw', 'checks/check_gw.sh');
await tapChecks(lab, 'web', 'checks/check_web.sh');
