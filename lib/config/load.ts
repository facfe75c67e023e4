import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { UsageError } from '../errors.js';
import { realOrSelf, resolveBindSource } from './binds.js';
import { readConfigCache, writeConfigCache } from './cache.js';
import { defaultLab } from './default.js';
import type { LabConfig, LabConfigInput } from './schema.js';

export const CONFIG_FILE_NAMES = ['lab.config.ts', 'lab.config.mjs', 'lab.config.js', 'lab.config.yaml', 'lab.config.yml', 'lab.config.json'];

export interface LoadOptions {
  /** An explicit config file (--config); otherwise lab.config.* in `cwd`, otherwise the default lab. */
  file?: string;
  cwd?: string;
  /** --name / LAB_NAME: overrides the config's lab name. */
  name?: string;
  /** --runtime: overrides the config's runtime. */
  runtime?: string;
  /**
   * false for the commands that take a lab down or look at it (destroy, down, doctor): a bind
   * source or file the config names that is gone since must not keep them from working.
   */
  checkPaths?: boolean;
}

export interface LoadedConfig {
  config: LabConfig;
  /** The file it came from, or undefined for the embedded default lab. */
  file?: string;
}

export async function loadConfig(options: LoadOptions = {}): Promise<LoadedConfig> {
  const cwd = options.cwd ?? process.cwd();
  const file = locateConfig(options.file, cwd);
  const cached = readConfigCache(file, options);
  const loaded = { config: cached ?? (await readAndValidate(file, options, cwd)), file };
  if (!cached) writeConfigCache(file, options, loaded.config);
  if (options.checkPaths !== false) assertPaths(loaded.config, file, cwd);
  return loaded;
}

/** The config file: the one given (--config; exit 2 when it is not there), else lab.config.* in `cwd`, else none (the default lab). */
export function locateConfig(given: string | undefined, cwd: string): string | undefined {
  const file = given ? path.resolve(cwd, given) : CONFIG_FILE_NAMES.map((n) => path.join(cwd, n)).find(existsSync);
  if (given && !existsSync(file!)) throw new UsageError(`config file not found: ${given}`);
  return file;
}

/**
 * Paths the config names, checked on every load (directories come and go, a symlink may change):
 * bind sources resolved to their real paths, which are what is mounted (see config/binds.ts), and
 * files that must exist. Anything wrong is refused before anything is made, every problem at once.
 */
export function assertPaths(config: LabConfig, file: string | undefined, cwd: string): void {
  const problems = pathProblems(config, file, cwd);
  if (problems.length) throw new UsageError(problems.join('\n'));
}

/** What assertPaths refuses, each a line naming its field; the bind sources that are fine are resolved in `config`. */
export function pathProblems(config: LabConfig, file: string | undefined, cwd: string): string[] {
  const where = `invalid config${file ? ` in ${file}` : ''}`;
  const context = { base: realOrSelf(file ? path.dirname(file) : cwd), labDirs: [config.stateDir, config.cacheDir].map(realOrSelf) };
  const problems: string[] = [];
  const missing = (field: string, value: string | undefined) => {
    if (value && !existsSync(value)) problems.push(`${where}: ${field}: ${value} does not exist`);
  };
  for (const [m, machine] of config.machines.entries()) {
    for (const [b, bind] of machine.binds.entries()) {
      try {
        bind.source = resolveBindSource(bind.source, bind.allowOutside, context, `${where}: machines.${m}.binds.${b}.source`);
      } catch (error) {
        if (!(error instanceof UsageError)) throw error;
        problems.push(error.message);
      }
    }
    missing(`machines.${m}.vm.disk`, machine.vm?.disk);
  }
  for (const [i, stage] of config.controller.entries()) {
    missing(`controller.${i}.playbook`, stage.playbook);
    missing(`controller.${i}.cwd`, stage.cwd);
    for (const [j, p] of stage.inventory.entries()) missing(`controller.${i}.inventory.${j}`, p);
    for (const [j, p] of stage.reads.entries()) missing(`controller.${i}.reads.${j}`, p);
  }
  return problems;
}

/** The config file merged over the default lab, validated (zod, loaded only here), with its paths resolved. */
async function readAndValidate(file: string | undefined, options: LoadOptions, cwd: string): Promise<LabConfig> {
  const { validateConfig } = await import('./validate.js');
  return resolveConfigPaths(validateConfig(await readConfigInput(file, options), file), file, cwd);
}

/** The config file merged over the default lab, with SADM's conventions and the command line's overrides: what is validated. */
export async function readConfigInput(file: string | undefined, options: Pick<LoadOptions, 'name' | 'runtime'>): Promise<LabConfigInput> {
  const overrides = file ? await readConfigFile(file) : {};
  const merged = mergeConfig(defaultLab, overrides);
  if (file) Object.assign(merged, sadmConventions(path.dirname(file), merged));
  if (options.name) merged.name = options.name;
  if (options.runtime) merged.runtime = options.runtime as LabConfigInput['runtime'];
  return merged;
}

/** A validated config's paths resolved: relative to its file (or, for the default lab, to `cwd`), and stages/, fixtures/ found beside it. */
export function resolveConfigPaths(config: LabConfig, file: string | undefined, cwd: string): LabConfig {
  if (file) {
    // Directories in a config file are relative to that file.
    for (const key of ['stateDir', 'cacheDir', 'stagesDir', 'fixturesDir'] as const) {
      const value = config[key];
      if (value) config[key] = path.resolve(path.dirname(file), value);
    }
    // A team's lab keeps stages/ and fixtures/ beside its config: found without saying so.
    for (const key of ['stagesDir', 'fixturesDir'] as const) {
      const beside = path.join(path.dirname(file), key === 'stagesDir' ? 'stages' : 'fixtures');
      if (!config[key] && existsSync(beside)) config[key] = beside;
    }
    const tarball = config.image.tarball;
    if (tarball && !/^https?:\/\//.test(tarball)) config.image.tarball = path.resolve(path.dirname(file), tarball);
  }
  // Bind sources are relative to the config file (or, for the default lab, to where lab runs).
  for (const machine of config.machines) {
    for (const bind of machine.binds) bind.source = path.resolve(file ? path.dirname(file) : cwd, bind.source);
    if (machine.vm?.disk) machine.vm.disk = path.resolve(file ? path.dirname(file) : cwd, machine.vm.disk);
  }
  // A controller stage's files too; a command's first word only when it is a path (./x, dir/x).
  const base = file ? path.dirname(file) : cwd;
  for (const stage of config.controller) {
    if (stage.playbook) stage.playbook = path.resolve(base, stage.playbook);
    if (stage.cwd) stage.cwd = path.resolve(base, stage.cwd);
    if (stage.run?.[0]?.includes('/')) stage.run[0] = path.resolve(base, stage.run[0]);
    stage.inventory = stage.inventory.map((p) => path.resolve(base, p));
    stage.reads = stage.reads.map((p) => path.resolve(base, p));
  }
  return config;
}

async function readConfigFile(file: string): Promise<Partial<LabConfigInput>> {
  let value: unknown;
  try {
    if (/\.(ya?ml)$/.test(file)) value = (await import('yaml')).parse(readFileSync(file, 'utf8'));
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
  // Named by its modification time: loaded again once edited (lab test --watch opens the lab at every edit), not taken from node's module cache.
  return import(`${pathToFileURL(file).href}?mtime=${statSync(file).mtimeMs}`);
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

