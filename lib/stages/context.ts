import { appendFileSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LabError } from '../errors.js';
import type { RunResult } from '../exec.js';
import { runOffline } from '../runtime/nspawn.js';
import type { LabView, StageContext } from './define.js';

const MAX_SYMLINK_HOPS = 40;
const STAGE_COMMAND_TIMEOUT_MS = 15 * 60_000;

/**
 * Maps a path as seen inside the machine to the host path under `root`, following symlinks
 * the way the machine would (absolute targets stay inside the root): a file written for a
 * machine can never land on the host. The last component is not followed.
 */
export function pathInRoot(root: string, file: string): string {
  const parts = path.posix.normalize(`/${file}`).split('/').filter(Boolean);
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
  root: string;
  nspawnName: string;
  fixturesDir: string;
  logFile: string;
  /** Shared downloaded-packages cache, bound over the machine's apt archive. */
  aptArchives: string;
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
    runOffline(target.root, target.nspawnName, argv, {
      logFile: target.logFile,
      input: options.input,
      timeout: options.timeout ?? STAGE_COMMAND_TIMEOUT_MS,
      binds: [`${target.aptArchives}:/var/cache/apt/archives`],
    });
  return {
    lab,
    log,
    writeFile,
    exec,
    fixture: async (name) => readFixture(name),
    template: async (name, file, values, options) => writeFile(file, fillTemplate(readFixture(name), values, name), options),
    enable: async (...units) => {
      await exec(['systemctl', 'enable', ...units]);
    },
  };
}

/** Installs packages into a stopped machine, from its mirror through the host's network. */
export async function installPackages(target: OfflineTarget, packages: readonly string[]): Promise<void> {
  if (packages.length === 0) return;
  const ctx = {
    logFile: target.logFile,
    timeout: STAGE_COMMAND_TIMEOUT_MS,
    binds: [`${target.aptArchives}:/var/cache/apt/archives`],
    // apt locks the shared archive cache: one install at a time, the others queue.
    exclusive: path.join(target.aptArchives, '.lab-install.lock'),
  };
  const install = ['apt-get', 'install', '-y', '-q', '-o', 'Dpkg::Options::=--force-confold', ...packages];
  const first = await runOffline(target.root, target.nspawnName, install, { ...ctx, allowFailure: true });
  if (first.exitCode === 0) return;
  // The image's package lists may be older than the mirror: refresh them once and retry.
  await runOffline(target.root, target.nspawnName, ['apt-get', 'update', '-q'], ctx);
  await runOffline(target.root, target.nspawnName, install, ctx);
}
