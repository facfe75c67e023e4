/**
 * `lab` as a dependency of a team's own lab: `import { defineStage, defineConfig } from 'sadm-lab'`.
 * Scenarios import from `sadm-lab/scenario`. Both ship their types (.d.ts in dist/).
 */
import type { LabConfigInput as LabConfig } from './config/schema.js';

export { defineStage } from './stages/define.js';
export { puppetAgent, puppetServerInputs, servePuppetContent } from './stages/tools.js';
export type { LabView, StageContext, StageDefinition } from './stages/define.js';
/** What a `lab.config.ts` exports: the config as written, before lab's defaults fill it in (the JSON Schema in schema/ says the same for YAML and JSON). */
export type { LabConfig };

/** Identity function that gives a `lab.config.ts` its types. */
export function defineConfig(config: LabConfig): LabConfig {
  return config;
}
