import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseSubnet } from '../config/ip.js';
import { importModule } from '../config/load.js';
import { type LabConfig, type MachineConfig, machineDependencies } from '../config/schema.js';
import { UsageError } from '../errors.js';
import { builtinFixturesDir, builtinStagesDir, packageRoot } from '../paths.js';
import { hashOf } from '../plan/key.js';
import type { MachineSpec, StageSpec } from '../plan/plan.js';
import type { LabView, StageDefinition } from './define.js';
import systemStage from './system.js';

export const SYSTEM_STAGE = 'system';
/** The built-in stage's own file (system.js once built, system.ts when run from sources): its source is part of its key. */
const SYSTEM_STAGE_FILE = fileURLToPath(new URL(`./system${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url));
const STAGE_EXTENSIONS = ['.js', '.mjs', '.ts'];
const DEFINITION_KEYS = new Set(['packages', 'fixtures', 'inputs', 'run', 'check']);

export interface LoadedStage extends StageSpec {
  file: string;
  definition: StageDefinition;
}

export interface LoadedMachine extends MachineSpec {
  config: MachineConfig;
  view: LabView;
  stages: LoadedStage[];
}

export interface LoadedLab {
  machines: LoadedMachine[];
  fixturesDir: string;
}

export function labView(config: LabConfig, machine: MachineConfig): LabView {
  const dns = config.machines.find((m) => m.name === config.zone.dnsMachine);
  return {
    config,
    machine,
    dnsAddress: dns && dns.address !== 'dhcp' ? dns.address : undefined,
    prefixLength: parseSubnet(config.zone.subnet).prefix,
  };
}

const sha = (content: string | Buffer) => createHash('sha256').update(content).digest('hex');

/**
 * Finds and loads every machine's stage modules and fixtures (the built-in `system` stage
 * first), and hashes what defines each stage. Fails with a usage error naming the machine
 * and stage before anything on the host is touched.
 */
export async function loadLab(config: LabConfig): Promise<LoadedLab> {
  const stagesDir = config.stagesDir ?? builtinStagesDir;
  const fixturesDir = config.fixturesDir ?? builtinFixturesDir;
  const machines: LoadedMachine[] = [];
  for (const [index, machine] of config.machines.entries()) {
    const view = labView(config, machine);
    const stages: LoadedStage[] = [];
    stages.push(describeStage(machine.name, SYSTEM_STAGE, SYSTEM_STAGE_FILE, systemStage, view, fixturesDir));
    for (const name of machine.stages) {
      const file = findStageFile(stagesDir, machine.name, name, `machines.${index}.stages`);
      const definition = await loadDefinition(file);
      stages.push(describeStage(machine.name, name, file, definition, view, fixturesDir));
    }
    // A DHCP machine cannot boot (get an address) before the machine that serves DHCP.
    machines.push({ name: machine.name, dependsOn: machineDependencies(config, machine), config: machine, view, stages });
  }
  return { machines, fixturesDir };
}

function findStageFile(stagesDir: string, machine: string, stage: string, field: string): string {
  for (const extension of STAGE_EXTENSIONS) {
    const file = path.join(stagesDir, machine, `${stage}${extension}`);
    if (existsSync(file)) return file;
  }
  const dir = path.join(stagesDir, machine);
  const available = existsSync(dir)
    ? readdirSync(dir).filter((f) => STAGE_EXTENSIONS.some((e) => f.endsWith(e) && !f.endsWith('.d.ts'))).map((f) => f.replace(/\.[mc]?[jt]s$/, ''))
    : [];
  throw new UsageError(
    `${field}: unknown stage '${stage}' for machine '${machine}': no ${path.join(dir, `${stage}.js`)} or .ts (stages there: ${available.join(', ') || 'none'})`,
  );
}

async function loadDefinition(file: string): Promise<StageDefinition> {
  let module: Record<string, unknown>;
  try {
    module = await importModule(file);
  } catch (error) {
    throw new UsageError(`stage ${file} cannot be loaded: ${(error as Error).message}`);
  }
  const definition = module.default;
  if (definition === null || typeof definition !== 'object') {
    throw new UsageError(`stage ${file} must export a stage as default (export default defineStage({...}))`);
  }
  const unknown = Object.keys(definition).filter((key) => !DEFINITION_KEYS.has(key));
  if (unknown.length) throw new UsageError(`stage ${file}: unknown field(s) ${unknown.join(', ')} (known: ${[...DEFINITION_KEYS].join(', ')})`);
  return definition as StageDefinition;
}

/**
 * The file whose content defines a stage. Built-in code hashes its TypeScript source, so that a
 * stage has the same key whether it runs compiled (the CLI) or from sources (scenario workers).
 */
export function definitionSource(file: string): string {
  const inBuild = path.relative(path.join(packageRoot, 'dist'), file);
  if (inBuild.startsWith('..') || path.isAbsolute(inBuild)) return file;
  const source = path.join(packageRoot, inBuild.replace(/\.js$/, '.ts'));
  return existsSync(source) ? source : file;
}

function describeStage(machine: string, name: string, file: string, definition: StageDefinition, view: LabView, fixturesDir: string): LoadedStage {
  const fixtures: Record<string, string> = {};
  for (const fixture of definition.fixtures ?? []) {
    const fixtureFile = path.join(fixturesDir, fixture);
    if (!existsSync(fixtureFile)) throw new UsageError(`stage ${machine}@${name}: fixture '${fixture}' not found in ${fixturesDir}`);
    fixtures[fixture] = sha(readFileSync(fixtureFile));
  }
  const definitionHash = hashOf({ source: sha(readFileSync(definitionSource(file))), fixtures, inputs: definition.inputs?.(view) ?? null });
  return { machine, name, file, definition, packages: [...(definition.packages ?? [])], definitionHash };
}
