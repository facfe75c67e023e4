import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { UsageError } from '../errors.js';
import { defaultLab } from './default.js';
import { isHostIn, overlaps, parseSubnet } from './ip.js';
import { type LabConfig, type LabConfigInput, labConfigSchema } from './schema.js';

export const CONFIG_FILE_NAMES = ['lab.config.ts', 'lab.config.mjs', 'lab.config.js', 'lab.config.yaml', 'lab.config.yml', 'lab.config.json'];

export interface LoadOptions {
  /** An explicit config file (--config); otherwise lab.config.* in `cwd`, otherwise the default lab. */
  file?: string;
  cwd?: string;
  /** --name / LAB_NAME: overrides the config's lab name. */
  name?: string;
  /** --runtime: overrides the config's runtime. */
  runtime?: string;
}

export interface LoadedConfig {
  config: LabConfig;
  /** The file it came from, or undefined for the embedded default lab. */
  file?: string;
}

export async function loadConfig(options: LoadOptions = {}): Promise<LoadedConfig> {
  const cwd = options.cwd ?? process.cwd();
  const file = options.file ? path.resolve(cwd, options.file) : CONFIG_FILE_NAMES.map((n) => path.join(cwd, n)).find(existsSync);
  if (options.file && !existsSync(file!)) throw new UsageError(`config file not found: ${options.file}`);
  const overrides = file ? await readConfigFile(file) : {};
  const merged = mergeConfig(defaultLab, overrides);
  if (file) Object.assign(merged, sadmConventions(path.dirname(file), merged));
  if (options.name) merged.name = options.name;
  if (options.runtime) merged.runtime = options.runtime as LabConfigInput['runtime'];
  const config = validateConfig(merged, file);
  if (file) {
    // Directories in a config file are relative to that file.
    for (const key of ['stateDir', 'cacheDir', 'stagesDir', 'fixturesDir'] as const) {
      const value = config[key];
      if (value) config[key] = path.resolve(path.dirname(file), value);
    }
    const tarball = config.image.tarball;
    if (tarball && !/^https?:\/\//.test(tarball)) config.image.tarball = path.resolve(path.dirname(file), tarball);
  }
  return { config, file };
}

async function readConfigFile(file: string): Promise<Partial<LabConfigInput>> {
  let value: unknown;
  try {
    if (/\.(ya?ml)$/.test(file)) value = parseYaml(readFileSync(file, 'utf8'));
    else if (file.endsWith('.json')) value = JSON.parse(readFileSync(file, 'utf8'));
    else value = (await importModule(file)).default;
  } catch (error) {
    throw new UsageError(`cannot read config ${file}: ${(error as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new UsageError(`config ${file} must define an object (a .ts/.js config exports it as default)`);
  }
  return value as Partial<LabConfigInput>;
}

/** Imports a JS or TS module; TypeScript support (tsx) is loaded only when needed, to keep start-up fast. */
export async function importModule(file: string): Promise<Record<string, unknown>> {
  if (file.endsWith('.ts')) {
    const { tsImport } = await import('tsx/esm/api');
    const module = (await tsImport(pathToFileURL(file).href, import.meta.url)) as Record<string, unknown>;
    // Outside an ESM package tsx loads the file as CommonJS: its exports arrive as `default`.
    const exports = module.default as Record<string, unknown> | undefined;
    return exports?.__esModule ? exports : module;
  }
  return import(pathToFileURL(file).href);
}

/** Objects merge key by key; arrays (machines, stages, packages) are replaced whole. */
export function mergeConfig(base: LabConfigInput, overrides: Partial<LabConfigInput>): LabConfigInput {
  const merge = (a: unknown, b: unknown): unknown => {
    if (b === undefined) return a;
    if (isPlainObject(a) && isPlainObject(b)) {
      const out: Record<string, unknown> = { ...a };
      for (const [key, value] of Object.entries(b)) out[key] = merge(a[key], value);
      return out;
    }
    return b;
  };
  return merge(base, overrides) as LabConfigInput;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** SADM's `container_setup.conf` beside the config: `USE_BTRFS=false` means copy storage. */
function sadmConventions(dir: string, config: LabConfigInput): Partial<LabConfigInput> {
  const conf = path.join(dir, 'container_setup.conf');
  if (!existsSync(conf)) return {};
  const useBtrfs = /^\s*USE_BTRFS\s*=\s*["']?(\w+)/m.exec(readFileSync(conf, 'utf8'))?.[1];
  if (useBtrfs === undefined) return {};
  return { storage: { ...config.storage, kind: useBtrfs === 'false' ? 'copy' : 'btrfs' } };
}

/** Validates shape (zod) and meaning (names, references, addresses); the message names the field. */
export function validateConfig(input: unknown, file?: string): LabConfig {
  const where = file ? ` in ${file}` : '';
  const parsed = labConfigSchema.safeParse(input);
  if (!parsed.success) throw new UsageError(`invalid config${where}: ${formatZodIssues(parsed.error)}`);
  const config = parsed.data;
  const problem = semanticProblem(config);
  if (problem) throw new UsageError(`invalid config${where}: ${problem}`);
  return config;
}

function formatZodIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length ? issue.path.join('.') : '(root)'}: ${issue.message}`)
    .join('; ');
}

function semanticProblem(config: LabConfig): string | undefined {
  const names = config.machines.map((m) => m.name);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate) return `machines: the name '${duplicate}' is used twice`;

  const zone = parseSubnet(config.zone.subnet);
  if (!isHostIn(config.zone.hostAddress, zone)) {
    return `zone.hostAddress: ${config.zone.hostAddress} is not a host address of ${config.zone.subnet}`;
  }
  if (config.network.mode === 'sandbox' && overlaps(zone, parseSubnet(config.network.wanSubnet))) {
    return `network.wanSubnet: ${config.network.wanSubnet} overlaps zone.subnet ${config.zone.subnet}`;
  }
  const owners = new Map<string, string>([[config.zone.hostAddress, 'zone.hostAddress']]);
  for (const [i, machine] of config.machines.entries()) {
    const field = `machines.${i}`;
    for (const dep of machine.dependsOn) {
      if (dep === machine.name) return `${field}.dependsOn: '${machine.name}' depends on itself`;
      if (!names.includes(dep)) return `${field}.dependsOn: unknown machine '${dep}' (machines: ${names.join(', ')})`;
    }
    const stageDuplicate = machine.stages.find((s, j) => machine.stages.indexOf(s) !== j);
    if (stageDuplicate) return `${field}.stages: the stage '${stageDuplicate}' is listed twice`;
    if (machine.stages.includes('system')) return `${field}.stages: 'system' is the built-in first stage of every machine`;
    if (machine.address === 'dhcp') continue;
    if (!isHostIn(machine.address, zone)) return `${field}.address: ${machine.address} is not a host address of ${config.zone.subnet}`;
    const owner = owners.get(machine.address);
    if (owner) return `${field}.address: ${machine.address} is already used by ${owner}`;
    owners.set(machine.address, `machine '${machine.name}'`);
  }
  if (config.network.mode === 'sandbox' && config.network.internet) {
    return 'network.internet: only for host mode (sandbox mode has its own simulated internet)';
  }
  const { image } = config;
  if (image.source === 'tarball' && !image.tarball) return 'image.tarball: required when image.source is tarball';
  if (image.source !== 'tarball' && image.tarball) return `image.tarball: only used when image.source is tarball (it is ${image.source})`;
  if (image.source === 'pacstrap' && image.distribution !== 'arch') return `image.distribution: pacstrap builds arch, not ${image.distribution}`;
  if (image.source === 'debootstrap' && image.distribution === 'arch') return 'image.distribution: debootstrap cannot build arch (use image.source pacstrap or tarball)';
  const dns = config.zone.dnsMachine;
  if (dns !== null) {
    const machine = config.machines.find((m) => m.name === dns);
    if (!machine) return `zone.dnsMachine: unknown machine '${dns}' (machines: ${names.join(', ')})`;
    if (machine.address === 'dhcp') return `zone.dnsMachine: '${dns}' serves DHCP, so it needs a static address`;
  } else if (config.machines.some((m) => m.address === 'dhcp')) {
    return `zone.dnsMachine: machines use DHCP but no machine serves it`;
  }
  return undefined;
}
