import { z } from 'zod';
import { labConfigSchema } from './schema.js';

/** Where the package ships the schema (`npm run build` writes it), relative to the package's root. */
export const CONFIG_JSON_SCHEMA = 'schema/lab.config.schema.json';

/**
 * The config file's JSON Schema, made from the zod schema that validates it, for editors
 * (`# yaml-language-server: $schema=...`): what a file may hold, before lab's defaults fill it in;
 * draft 7, the one editors' YAML and JSON support knows best.
 * Checks zod cannot put in a schema (octets at most 255, addresses in their subnets) are lab's own.
 */
export function configJsonSchema(): Record<string, unknown> {
  const schema: Record<string, unknown> = z.toJSONSchema(labConfigSchema, { io: 'input', target: 'draft-7' });
  // A file is merged over the default lab: without `machines`, it keeps the default lab's.
  delete schema.required;
  return { ...schema, title: 'lab.config', description: 'A lab of sadm-lab (lab.config.yaml, .json): merged over the default lab, objects key by key, arrays whole. lab validate checks what a schema cannot.' };
}

/** The schema as the file holds it. */
export const configJsonSchemaText = () => `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
