import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BuildFailure } from '../errors.js';
import { run, type RunResult } from '../exec.js';
import { pathInRoot } from '../root-path.js';
import type { Bind, BuildSteps } from '../runtime/build-steps.js';
import type { LabView, StageContext } from './define.js';
import { type FixtureFile, fixtureFiles } from './fixtures.js';

export function fillTemplate(template: string, values: Record<string, string | number>, name: string): string {
  return template.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    if (!(key in values)) throw new BuildFailure(`fixture ${name}: no value for {{${key}}}`);
    return String(values[key]);
  });
}

/** Where a stage's helpers work: the machine's root on the host, its fixtures, its log; and the limits of its commands. */
export interface StageTarget {
  root: string;
  fixturesDir: string;
  logFile: string;
  /** Where the log stops growing. */
  logLimitBytes: number;
  /** Each command's deadline, unless the stage gives one. */
  timeoutMs: number;
}

export interface OfflineTarget extends StageTarget {
  runner: BuildSteps;
  nspawnName: string;
  /** Binds while the stage's commands run: the machine's own, and the shared package cache. */
  binds: Bind[];
}

/** How a context runs what the stage asks: in the stopped root, or in the booted machine. */
interface Runner {
  exec(argv: readonly string[], options: { input?: string; timeout?: number }): Promise<RunResult>;
  enable(units: string[]): Promise<void>;
  /** Runs a shell script with files beside it, under SCRIPT_DIR. */
  script(script: string, files: Record<string, string>, env: Record<string, string>): Promise<void>;
}

/** Where a shell stage's script and declared fixtures are, inside the machine, while it runs. */
const SCRIPT_DIR = '/run/lab-stage';

function stageContext(target: StageTarget, lab: LabView, declaredFixtures: readonly string[], runner: Runner): StageContext {
  const log = (line: string) => appendFileSync(target.logFile, `${line}\n`);
  // A declared fixture, or a file of a declared directory; checked again as it is read (its links may have changed).
  const declaredFiles = (name: string): FixtureFile[] => {
    if (!declaredFixtures.some((declared) => name === declared || name.startsWith(`${declared}/`))) {
      throw new BuildFailure(`fixture '${name}' is used but not listed in the stage's fixtures (its changes would not rebuild the stage)`);
    }
    return fixtureFiles(target.fixturesDir, name, `a stage of ${lab.machine.name}`);
  };
  const readFixture = (name: string): string => {
    const [file, ...more] = declaredFiles(name);
    if (file?.name !== name || more.length > 0) throw new BuildFailure(`fixture '${name}' is a directory: read its files by name (${name}/...), or use it from a script under $LAB_FIXTURES`);
    return readFileSync(file.file, 'utf8');
  };
  // The same files whether the machine runs or not: its root is this directory either way.
  const writeFile = async (file: string, content: string, options: { mode?: number } = {}): Promise<void> => {
    const hostPath = pathInRoot(target.root, file);
    mkdirSync(path.dirname(hostPath), { recursive: true });
    rmSync(hostPath, { force: true }); // replace a symlink rather than write through it
    writeFileSync(hostPath, content, { mode: options.mode ?? 0o644 });
    log(`wrote ${file}`);
  };
  return {
    lab,
    log,
    writeFile,
    exec: (argv, options = {}) => runner.exec(argv, { input: options.input, timeout: options.timeout ?? target.timeoutMs }),
    fixture: async (name) => readFixture(name),
    template: async (name, file, values, options) => writeFile(file, fillTemplate(readFixture(name), values, name), options),
    enable: (...units) => runner.enable(units),
    script: (script, fixtures, env) =>
      runner.script(script, Object.fromEntries(fixtures.flatMap((f) => declaredFiles(f).map((file) => [`fixtures/${file.name}`, readFileSync(file.file, 'utf8')]))), env),
  };
}

/** A stage's commands write to its log, up to its limit. */
const commandLog = (target: StageTarget) => ({ logFile: target.logFile, logLimitBytes: target.logLimitBytes });

const envArgv = (env: Record<string, string>) => ['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`)];

/** The helpers a stage's `run` gets while its machine is stopped and its root is being built. */
export function offlineContext(target: OfflineTarget, lab: LabView, declaredFixtures: readonly string[]): StageContext {
  const exec = (argv: readonly string[], options: { input?: string; timeout?: number; binds?: Bind[] }) =>
    target.runner.run(target.root, target.nspawnName, argv, { ...commandLog(target), input: options.input, timeout: options.timeout, binds: [...target.binds, ...(options.binds ?? [])] });
  return stageContext(target, lab, declaredFixtures, {
    exec,
    // The host's systemctl on the root: the same links, without starting a build step for them.
    enable: async (units) => {
      await run(['systemctl', `--root=${target.root}`, 'enable', ...units], { ...commandLog(target), timeout: target.timeoutMs });
    },
    async script(script, files, env) {
      const dir = mkdtempSync(path.join(tmpdir(), 'lab-stage-'));
      try {
        for (const [name, content] of Object.entries({ 'stage.sh': script, ...files })) {
          mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
          writeFileSync(path.join(dir, name), content);
        }
        await exec([...envArgv(env), '/bin/sh', `${SCRIPT_DIR}/stage.sh`], { timeout: target.timeoutMs, binds: [{ source: dir, target: SCRIPT_DIR, readonly: true }] });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  });
}

/** The helpers of an online stage: its machine is booted, and commands run in it over the lab network. */
export function onlineContext(
  target: StageTarget,
  lab: LabView,
  declaredFixtures: readonly string[],
  execInMachine: (argv: readonly string[], options: { input?: string; timeout: number; logFile: string; logLimitBytes: number }) => Promise<RunResult>,
): StageContext {
  const exec = (argv: readonly string[], options: { input?: string; timeout?: number } = {}) =>
    execInMachine(argv, { input: options.input, timeout: options.timeout ?? target.timeoutMs, ...commandLog(target) });
  return stageContext(target, lab, declaredFixtures, {
    exec,
    enable: async (units) => {
      await exec(['systemctl', 'enable', ...units]);
    },
    async script(script, files, env) {
      // /run is the machine's own tmpfs: the files go there through the machine, and vanish at its stop.
      for (const [name, content] of Object.entries({ 'stage.sh': script, ...files })) {
        await exec(['sh', '-c', 'mkdir -p "$(dirname "$1")" && cat > "$1"', 'sh', `${SCRIPT_DIR}/${name}`], { input: content });
      }
      try {
        await exec([...envArgv(env), '/bin/sh', `${SCRIPT_DIR}/stage.sh`]);
      } finally {
        await exec(['rm', '-rf', SCRIPT_DIR]);
      }
    },
  });
}
