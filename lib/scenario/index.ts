/** What scenarios import (`sadm-lab/scenario`): the lab under test, its machines, TAP checks. */
export { LabMachine, ScenarioLab, tapChecks, useLab } from './harness.js';
export type { CurlOptions, CurlReply, ScenarioOptions, TapPoint } from './harness.js';
export type { Impairment } from '../network/faults.js';
export { AssertionFailure } from '../errors.js';
export { Machine } from '../machine.js';
