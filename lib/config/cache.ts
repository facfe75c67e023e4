import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LAB_RUN_DIR, ownModuleDir } from '../paths.js';
import type { LabConfig } from './schema.js';

/**
 * The last validated config, kept so that the commands people type all day (exec, status, shell)
 * need neither the YAML parser nor zod: it is used only while nothing it came from changed (the
 * content of the config file and of what sits beside it, the overrides, lab's own config code).
 * Content, not modification times: an edit of the same size with its mtime put back is seen.
 * Only for the default lab and YAML/JSON files: a .ts/.js config can import anything, so it is
 * always loaded. Root only, in /run (gone at reboot), closed to other users.
 */
const CACHE_DIR = path.join(LAB_RUN_DIR, 'config-cache');
const OWN_MODULES = ['schema', 'default', 'validate', 'binds', 'load', 'cache'];
/** Directories beside a config file that it uses without naming them (see load.ts). */
const BESIDE = ['stages', 'fixtures'];

/** The file's content hashed, or null when there is none. */
function digestOf(file: string): string | null {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    return null;
  }
}

/** Where the config of `file` (or the default lab) with these overrides is kept; undefined when it is not kept. */
export function cacheFile(file: string | undefined, overrides: { name?: string; runtime?: string }): string | undefined {
  if (process.getuid?.() !== 0) return undefined;
  if (file && !/\.(ya?ml|json)$/.test(file)) return undefined;
  // In the CLI's bundle this code is a chunk built from dist/lib/config: those files are its identity.
  const { dir: codeDir, extension } = ownModuleDir(import.meta.url, 'lib/config', 'load');
  const dir = file ? path.dirname(file) : undefined;
  const identity = {
    file: file ?? null,
    config: file ? digestOf(file) : null,
    sadm: dir ? digestOf(path.join(dir, 'container_setup.conf')) : null,
    beside: dir ? BESIDE.map((name) => existsSync(path.join(dir, name))) : null,
    name: overrides.name ?? null,
    runtime: overrides.runtime ?? null,
    code: OWN_MODULES.map((m) => digestOf(path.join(codeDir, `${m}${extension}`))),
  };
  return path.join(CACHE_DIR, `${createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 32)}.json`);
}

export function readConfigCache(file: string | undefined, overrides: { name?: string; runtime?: string }): LabConfig | undefined {
  const cache = cacheFile(file, overrides);
  if (!cache || !existsSync(cache)) return undefined;
  try {
    return JSON.parse(readFileSync(cache, 'utf8')) as LabConfig;
  } catch {
    return undefined;
  }
}

export function writeConfigCache(file: string | undefined, overrides: { name?: string; runtime?: string }, config: LabConfig): void {
  const cache = cacheFile(file, overrides);
  if (!cache) return;
  try {
    mkdirSync(CACHE_DIR, { recursive: true, mode: 0o700 });
    const partial = `${cache}.${process.pid}.tmp`;
    writeFileSync(partial, JSON.stringify(config), { mode: 0o600 });
    renameSync(partial, cache);
  } catch {
    // a cache: without it, the next command validates again
  }
}
