/** How `lab test` tells the scenario workers which lab to use and which group they run in. */
export const ENV_CONFIG = 'LAB_TEST_CONFIG';
export const ENV_NAME = 'LAB_TEST_NAME';
export const ENV_GROUP = 'LAB_TEST_GROUP';
/** Scenarios under this folder may change machines; they run one at a time, after the others. */
export const EXCLUSIVE_DIR = 'exclusive';
/** lab test --capture: where each scenario's pcaps go (one directory per scenario), and the scenarios' root to name them. */
export const ENV_CAPTURE_DIR = 'LAB_TEST_CAPTURE_DIR';
export const ENV_SCENARIOS_DIR = 'LAB_TEST_SCENARIOS_DIR';
/** lab test --debug: where a worker whose test failed asks lab test to pause (see pause.ts). */
export const ENV_DEBUG_DIR = 'LAB_TEST_DEBUG_DIR';
