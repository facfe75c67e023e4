import { appendFileSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LabError } from '../errors.js';
import { run, type RunResult } from '../exec.js';
import type { Bind, OfflineRunner } from '../runtime/offline.js';
import type { LabView, StageContext } from './define.js';

const MAX_SYMLINK_HOPS = 40;
const STAGE_COMMAND_TIMEOUT_MS = 15 * 60_000;

/**
 * Maps a path as seen inside the machine to the host path under `root`, following symlinks
 * the way the machine would (absolute targets stay inside the root): a file written for a
 * machine can never land on the host. The last component is not followed.
 */
export function pathInRoot(root: string, file: string): string {
  // Not normalized first: `..` after a link climbs from where the link leads, as in the machine.
  const parts = file.split('/').filter((part) => part !== '' && part !== '.');
  const resolved: string[] = [];
  let hops = 0;
  while (parts.length > 0) {
    const part = parts.shift()!;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const candidate = path.join(root, ...resolved, part);
    let isLink = false;
    try {
      isLink = parts.length > 0 && lstatSync(candidate).isSymbolicLink();
    } catch {
      // Missing components are created later; nothing to follow.
    }
    if (!isLink) {
      resolved.push(part);
      continue;
    }
    if (++hops > MAX_SYMLINK_HOPS) throw new LabError(`too many symlinks resolving ${file} in ${root}`, 1);
    const target = readlinkSync(candidate);
    if (target.startsWith('/')) resolved.length = 0;
    parts.unshift(...target.split('/').filter(Boolean));
  }
  return path.join(root, ...resolved);
}

export function fillTemplate(template: string, values: Record<string, string | number>, name: string): string {
  return template.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    if (!(key in values)) throw new LabError(`fixture ${name}: no value for {{${key}}}`, 1);
    return String(values[key]);
  });
}

export interface OfflineTarget {
  runner: OfflineRunner;
  root: string;
  nspawnName: string;
  fixturesDir: string;
  logFile: string;
  /** Binds while the stage's commands run: the machine's own, and the shared package cache. */
  binds: Bind[];
}

/** The helpers a stage's `run` gets while its machine is stopped and its root is being built. */
export function offlineContext(target: OfflineTarget, lab: LabView, declaredFixtures: readonly string[]): StageContext {
  const log = (line: string) => appendFileSync(target.logFile, `${line}\n`);
  const readFixture = (name: string): string => {
    if (!declaredFixtures.includes(name)) {
      throw new LabError(`fixture '${name}' is used but not listed in the stage's fixtures (its changes would not rebuild the stage)`, 1);
    }
    return readFileSync(path.join(target.fixturesDir, name), 'utf8');
  };
  const writeFile = async (file: string, content: string, options: { mode?: number } = {}): Promise<void> => {
    const hostPath = pathInRoot(target.root, file);
    mkdirSync(path.dirname(hostPath), { recursive: true });
    rmSync(hostPath, { force: true }); // replace a symlink rather than write through it
    writeFileSync(hostPath, content, { mode: options.mode ?? 0o644 });
    log(`wrote ${file}`);
  };
  const exec = (argv: readonly string[], options: { input?: string; timeout?: number } = {}): Promise<RunResult> =>
    target.runner.run(target.root, target.nspawnName, argv, {
      logFile: target.logFile,
      input: options.input,
      timeout: options.timeout ?? STAGE_COMMAND_TIMEOUT_MS,
      binds: target.binds,
    });
  return {
    lab,
    log,
    writeFile,
    exec,
    fixture: async (name) => readFixture(name),
    template: async (name, file, values, options) => writeFile(file, fillTemplate(readFixture(name), values, name), options),
    enable: async (...units) => {
      // The host's systemctl on the root: the same links, without starting a build step for them.
      await run(['systemctl', `--root=${target.root}`, 'enable', ...units], { logFile: target.logFile, timeout: STAGE_COMMAND_TIMEOUT_MS });
    },
  };
}
