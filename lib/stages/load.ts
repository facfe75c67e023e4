import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { importModule } from '../config/load.js';
import type { LabConfig, MachineConfig } from '../config/schema.js';
import { hasStages, machineDependencies, type Topology, type TopologyMachine, topologyOf } from '../config/topology.js';
import { UsageError } from '../errors.js';
import { builtinFixturesDir, builtinStagesDir, ownModuleDir, packageRoot } from '../paths.js';
import { hashOf } from '../plan/key.js';
import type { MachineSpec, StageSpec } from '../plan/plan.js';
import type { LabView, StageDefinition } from './define.js';
import { shellStage } from './shell.js';
import { TOOL_EXTENSIONS, toolStage } from './tools.js';
import systemStage from './system.js';
import { sshStage } from './ssh.js';
import type { LoadedControllerStage } from '../controller/load.js';
import { sha, treeHash } from './content.js';
import { fixtureFiles, fixtureHash } from './fixtures.js';
import { bindTargetProblem } from '../config/binds.js';

export const SYSTEM_STAGE = 'system';
export const SSH_STAGE = 'ssh';
/** A built-in stage's own file (system.js once built, system.ts when run from sources, also from the CLI's bundle): its source is part of its key. */
const builtinStageFile = (name: string) => {
  const { dir, extension } = ownModuleDir(import.meta.url, 'lib/stages', 'load');
  return path.join(dir, `${name}${extension}`);
};
/** The built-in system and ssh stages are lab's own modules, not stage files of a lab's. */
export const isLabModule = (file: string) => [SYSTEM_STAGE, SSH_STAGE].some((name) => file === builtinStageFile(name));
/** Every kind of stage file, by its extension, and how its definition is made. */
const STAGE_KINDS: { extensions: readonly string[]; define(file: string, stage: string, config: LabConfig, configDir?: string): StageDefinition | Promise<StageDefinition> }[] = [
  { extensions: ['.js', '.mjs', '.ts'], define: (file) => loadDefinition(file) },
  { extensions: ['.sh'], define: (file, stage) => shellStage(file, stage) },
  { extensions: Object.keys(TOOL_EXTENSIONS), define: (file, stage, config, configDir) => toolStage(file, stage, config.image, configDir) },
];
export const STAGE_EXTENSIONS = STAGE_KINDS.flatMap((kind) => kind.extensions);
/** `configDir`: where the team's content for tools sits (roles/, modules/, ...), beside the config file; none for the default lab. */
const defineStageOf = (file: string, stage: string, config: LabConfig, configDir?: string) =>
  STAGE_KINDS.find((kind) => kind.extensions.includes(path.extname(file)))!.define(file, stage, config, configDir);
const DEFINITION_KEYS = new Set(['packages', 'fixtures', 'binds', 'online', 'timeoutSeconds', 'inputs', 'run', 'check', 'ready']);
const MAX_TIMEOUT_S = 7 * 86400;

export interface LoadedStage extends StageSpec {
  file: string;
  definition: StageDefinition;
  /** Where its fixtures are: the lab's, or lab's own for a built-in stage used by name. */
  fixturesDir: string;
}

export interface LoadedMachine extends MachineSpec {
  config: MachineConfig;
  view: LabView;
  stages: LoadedStage[];
}

export interface LoadedLab {
  machines: LoadedMachine[];
  fixturesDir: string;
  /** The lab-wide stages run from the controller, in order. */
  controller: LoadedControllerStage[];
}

export function labView(config: LabConfig, machine: MachineConfig, topology: Topology = topologyOf(config), configDir?: string): LabView {
  const self = topology.machines.find((m) => m.name === machine.name)!;
  return { config, machine, domain: topology.domain, dnsAddress: dnsAddressFor(topology, self), prefixLength: topology.networks[0]!.prefixLength, topology, self, ...(configDir ? { configDir } : {}) };
}

/** The DNS server's static address on a network this machine is on, else its first static address (reached through routing). */
function dnsAddressFor(topology: Topology, self: TopologyMachine): string | undefined {
  const server = topology.machines.find((m) => m.name === topology.dnsMachine);
  if (!server) return undefined;
  const statics = server.interfaces.filter((i) => i.address !== 'dhcp');
  const shared = statics.find((i) => self.interfaces.some((own) => own.network === i.network));
  return (shared ?? statics[0])?.address;
}

/**
 * Finds and loads every machine's stage modules and fixtures (the built-in `system` stage
 * first), and hashes what defines each stage. Fails with a usage error naming the machine
 * and stage before anything on the host is touched; given `problems` (lab validate), adds each
 * stage's to them instead and goes on, leaving that stage out.
 */
export async function loadLab(config: LabConfig, topology: Topology = topologyOf(config), configFile?: string, problems?: string[]): Promise<LoadedLab> {
  const stagesDir = config.stagesDir ?? builtinStagesDir;
  const fixturesDir = config.fixturesDir ?? builtinFixturesDir;
  const machines: LoadedMachine[] = [];
  const configDir = configFile && path.dirname(configFile);
  for (const [index, machine] of config.machines.entries()) {
    const view = labView(config, machine, topology, configDir);
    const stages: LoadedStage[] = [];
    // A vm or a diskless machine has no root of lab's to build: no stage at all, not even system.
    if (hasStages(machine)) stages.push(describeStage(machine.name, SYSTEM_STAGE, builtinStageFile(SYSTEM_STAGE), systemStage, view, fixturesDir));
    // The controller's way in, before the machine's own stages (which may then use it too).
    if (hasStages(machine) && config.controller.length > 0) stages.push(describeStage(machine.name, SSH_STAGE, builtinStageFile(SSH_STAGE), sshStage(config), view, fixturesDir));
    for (const name of machine.stages) {
      const stage = await collecting(problems, async () => {
        // The lab's own stage, else lab's built-in one of that name (gw's dns, web's proxy, ...), with its fixtures.
        const own = findStageFile(stagesDir, machine.name, name);
        const builtin = own ? undefined : findStageFile(builtinStagesDir, machine.name, name);
        const file = own ?? builtin ?? unknownStage(stagesDir, machine.name, name, `machines.${index}.stages`);
        const definition = await defineStageOf(file, name, config, configDir);
        return describeStage(machine.name, name, file, definition, view, builtin ? builtinFixturesDir : fixturesDir);
      });
      if (stage) stages.push(stage);
    }
    // A DHCP machine cannot boot (get an address) before the machine that serves DHCP.
    machines.push({ name: machine.name, dependsOn: machineDependencies(config, machine), config: machine, view, stages, ...(machine.root ? { bootsFrom: machine.root } : {}) });
  }
  // What a playbook reads is found with the YAML parser: loaded only by a lab that has controller stages.
  const controller = config.controller.length === 0
    ? []
    : ((await collecting(problems, async () => (await import('../controller/load.js')).loadControllerStages(config, topology, configFile ? path.dirname(configFile) : process.cwd()))) ?? []);
  return { machines, fixturesDir, controller };
}

/** What `load` makes; with `problems`, a usage error of it is added to them instead (undefined), so that the next one is found too. */
async function collecting<T>(problems: string[] | undefined, load: () => Promise<T>): Promise<T | undefined> {
  if (!problems) return load();
  try {
    return await load();
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    problems.push(error.message);
    return undefined;
  }
}

/** A stage's file; two files of one stage (say dns.ts and dns.sh) are refused: which one is meant? */
function findStageFile(stagesDir: string, machine: string, stage: string): string | undefined {
  // A built lab has both x.ts (source) and x.js (build) only in lab's own dist: the source is not a stage there.
  const found = STAGE_EXTENSIONS.map((extension) => path.join(stagesDir, machine, `${stage}${extension}`)).filter(existsSync);
  if (found.length > 1) throw new UsageError(`stage ${machine}@${stage}: ${found.map((f) => path.basename(f)).join(' and ')} both define it in ${path.join(stagesDir, machine)}: keep one`);
  return found[0];
}

function unknownStage(stagesDir: string, machine: string, stage: string, field: string): never {
  const dir = path.join(stagesDir, machine);
  const available = existsSync(dir)
    ? readdirSync(dir).filter((f) => STAGE_EXTENSIONS.includes(path.extname(f)) && !f.endsWith('.d.ts')).map((f) => f.slice(0, -path.extname(f).length))
    : [];
  throw new UsageError(
    `${field}: unknown stage '${stage}' for machine '${machine}': no ${path.join(dir, stage)}${STAGE_EXTENSIONS.join(', ')} (stages there: ${available.join(', ') || 'none'})`,
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
  const { timeoutSeconds } = definition as StageDefinition;
  if (timeoutSeconds !== undefined && !(typeof timeoutSeconds === 'number' && timeoutSeconds > 0 && timeoutSeconds <= MAX_TIMEOUT_S)) {
    throw new UsageError(`stage ${file}: timeoutSeconds: ${JSON.stringify(timeoutSeconds)} is not a number of seconds above 0 and at most ${MAX_TIMEOUT_S} (7 days)`);
  }
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
  const where = `stage ${machine}@${name}`;
  const fixtures: Record<string, string> = {};
  for (const fixture of definition.fixtures ?? []) fixtures[fixture] = fixtureHash(fixtureFiles(fixturesDir, fixture, where), fixture);
  const binds: Record<string, string> = {};
  for (const target of definition.binds ?? []) {
    const problem = bindTargetProblem(target);
    if (problem) throw new UsageError(`${where}: binds: '${target}': ${problem}`);
    const bind = view.machine.binds.find((b) => b.target === target);
    if (!bind) throw new UsageError(`stage ${machine}@${name}: binds: '${target}' is not bound into ${machine} (its binds: ${view.machine.binds.map((b) => b.target).join(', ') || 'none'})`);
    if (!bind.readonly) throw new UsageError(`stage ${machine}@${name}: binds: '${target}' is writable: only a read-only bind's content can be part of a key`);
    binds[target] = treeHash(bind.source);
  }
  const definitionHash = hashOf({ source: sha(readFileSync(definitionSource(file))), fixtures, binds, inputs: definition.inputs?.(view) ?? null });
  return { machine, name, file, definition, packages: [...(definition.packages ?? [])], definitionHash, fixturesDir, online: Boolean(definition.online) };
}
