/** What scenarios import (`sadm-lab/scenario`): the lab under test, its machines, TAP checks. */
export { LabMachine, ScenarioLab, tapChecks, useLab } from './harness.js';
export type { CurlOptions, CurlReply, DuringOptions, ScenarioOptions, TapPoint } from './harness.js';
export type { CopyReport } from '../engine/copy.js';
export type { Impairment } from '../network/faults.js';
export type { Command } from '../machine-verbs.js';
export { AssertionFailure } from '../errors.js';
export { Machine } from '../machine-verbs.js';
