import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LabError, StageError, UsageError } from '../errors.js';
import { TreeWatcher } from '../host/watch.js';
import { packageRoot } from '../paths.js';
import { countTests } from '../report/write.js';
import { holdingLock } from '../state/lock.js';
import type { Lab } from './lab-types.js';
import { defaultScenariosDir, listScenarios, runScenarioFiles, selectScenarios } from './test.js';
import { up, type UpReport } from './up.js';

/** Edits come in bursts (an editor writes, renames, touches): a cycle starts this long after the last one. */
const SETTLE_MS = 150;
/** A failed stage's last log lines shown under its cycle's line. */
const LOG_TAIL_LINES = 5;

export interface WatchOptions {
  /** The scenarios asked for (all when empty): the first cycle runs them, later ones what changed among them. */
  scenarios: string[];
  scenariosDir?: string;
  serial?: boolean;
  /** One line per cycle (and the failures under it). */
  print: (text: string) => void;
}

/** What changed since the last cycle, sorted into what it makes lab do. */
export interface Changes {
  /** Scenario files that changed: they run again. */
  scenarios: string[];
  /** Other files under the scenarios directory (a helper they import): every scenario runs again. */
  scenarioSupport: string[];
  /** Anything else (the config, stages, fixtures, bound trees): lab up, then the scenarios that use what it rebuilt. */
  lab: string[];
}

export function classifyChanges(files: readonly string[], scenariosDir: string, scenarioFiles: ReadonlySet<string>): Changes {
  const changes: Changes = { scenarios: [], scenarioSupport: [], lab: [] };
  for (const file of new Set(files)) {
    if (scenarioFiles.has(file)) changes.scenarios.push(file);
    else if (file.startsWith(`${scenariosDir}/`)) changes.scenarioSupport.push(file);
    else changes.lab.push(file);
  }
  return changes;
}

/**
 * The machines a scenario's source names, each as a word of its own (`lab.machine('web')`,
 * `web.${lab.domain}`; `web` in `web-silicon` is not web), or undefined when it names none: then
 * which ones it uses cannot be told, and it counts as using every machine. A scenario reaches
 * machines through others (a curl from gw to web's proxy): naming them anywhere is what counts.
 */
export function machinesNamedIn(source: string, machines: readonly string[]): Set<string> | undefined {
  const escape = (name: string) => name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const named = new Set(machines.filter((m) => new RegExp(`(?<![A-Za-z0-9_-])${escape(m)}(?![A-Za-z0-9_-])`).test(source)));
  return named.size > 0 ? named : undefined;
}

/** The machines whose root or boot lab up touched: a stage built, or booted again. */
export function touchedMachines(report: UpReport): Set<string> {
  return new Set(report.machines.filter((m) => m.booted || m.stages.some((s) => s.action === 'build')).map((m) => m.name));
}

/**
 * The scenarios a cycle runs, among those asked for: all of them after a change to what they
 * share; else the ones that changed, and the ones that use a machine lab up touched.
 */
export function scenariosToRun(selected: readonly string[], changes: Changes, touched: ReadonlySet<string>, machines: readonly string[], read: (file: string) => string): string[] {
  if (changes.scenarioSupport.length > 0) return [...selected];
  return selected.filter((file) => {
    if (changes.scenarios.includes(file)) return true;
    if (touched.size === 0) return false;
    const named = machinesNamedIn(read(file), machines);
    return named === undefined || [...named].some((m) => touched.has(m));
  });
}

/** Where lab looks for edits: what the lab is made of and its scenarios, lab's own state left out. */
export function watchedRoots(lab: Lab, scenariosDir: string): string[] {
  const roots = [
    lab.configFile ? path.dirname(lab.configFile) : undefined,
    lab.config.stagesDir ?? builtinStageSources(),
    lab.config.fixturesDir,
    scenariosDir,
    ...lab.config.machines.flatMap((m) => m.binds.map((b) => b.source)),
    ...lab.config.controller.flatMap((s) => (s.playbook ? [path.dirname(s.playbook)] : [])),
  ].filter((r): r is string => r !== undefined && existsSync(r));
  // A root inside another is watched through it.
  return [...new Set(roots)].filter((r, _, all) => !all.some((other) => other !== r && r.startsWith(`${other}/`))).sort();
}

/**
 * What editors and tools write beside what a team edits, never a reason for a cycle: vim's swap
 * files and its write test (4913), emacs' lock and backup files, logs (`lab test --watch > watch.log`
 * in the lab's directory would otherwise start a cycle at every line it writes).
 */
export function isNoise(file: string): boolean {
  const name = path.basename(file);
  return /^\..*\.sw[a-px]$|^\.#|~$|^4913$|\.log$/.test(name);
}

/** What lab itself writes, never watched: its state (vite's cache in it), its cache. */
function labOwnDirs(lab: Lab): (dir: string) => boolean {
  const own = [lab.dirs.state, lab.config.cacheDir];
  return (dir) => own.some((d) => dir === d || dir.startsWith(`${d}/`));
}

/** lab's built-in stages in a checkout of lab itself: their TypeScript sources, which the build compiles to dist/stages. */
function builtinStageSources(): string | undefined {
  const sources = path.join(packageRoot, 'stages');
  return existsSync(path.join(packageRoot, 'tsconfig.json')) && existsSync(sources) ? sources : undefined;
}

/**
 * A built-in stage's source edited in a checkout of lab (`root`): compiled to where lab loads it
 * from (dist/stages), as the build would, so that its key changes as its content does.
 */
export async function compileBuiltinStage(file: string, root = packageRoot): Promise<void> {
  const ts = (await import('typescript').catch(() => {
    throw new UsageError(`${file} changed: compiling lab's own stages needs its dev dependencies`, 'run npm ci, or npm run build after the edit');
  })).default;
  const { options } = ts.parseJsonConfigFileContent(ts.readConfigFile(path.join(root, 'tsconfig.json'), ts.sys.readFile).config, ts.sys, root);
  // Alone, the file cannot tell NodeNext it is in an ES module package: said here, as the build knows it.
  const output = ts.transpileModule(readFileSync(file, 'utf8'), { compilerOptions: { ...options, module: ts.ModuleKind.ES2022 }, fileName: file });
  const target = path.join(root, 'dist', path.relative(root, file)).replace(/\.ts$/, '.js');
  mkdirSync(path.dirname(target), { recursive: true });
  writeFileSync(target, output.outputText);
  if (output.sourceMapText) writeFileSync(`${target}.map`, output.sourceMapText);
}

/** Paths said relative to where lab runs, and at most a few of them. */
function listed(files: readonly string[], limit = 3): string {
  const shown = files.slice(0, limit).map((f) => path.relative(process.cwd(), f) || f);
  return files.length > limit ? `${shown.join(', ')} and ${files.length - limit} more` : shown.join(', ');
}

/**
 * `lab test --watch`: a first cycle as lab test runs (lab up, then the scenarios), then one cycle
 * per edit: lab up again when anything but a scenario changed (it rebuilds what changed, from the
 * snapshot before it, and boots again what it rebuilt), then the scenarios that changed or use a
 * machine it touched. The lab's lock is held during a cycle only, never while waiting for an edit;
 * a failed stage or a config that does not load is said, and the next edit tries again. It ends on
 * Ctrl-C (cli/main.ts), leaving the lab running.
 */
export async function watchTests(opened: Lab, reopen: () => Promise<Lab>, options: WatchOptions): Promise<never> {
  let lab = opened;
  const scenariosDir = path.resolve(options.scenariosDir ?? defaultScenariosDir(lab));
  const asked = () => {
    const all = listScenarios(scenariosDir);
    if (all.size === 0) throw new UsageError(`no scenario (*.test.ts) in ${scenariosDir}`);
    return selectScenarios(all, options.scenarios);
  };
  asked(); // an unknown scenario is refused before anything runs
  const edits = new EditQueue();
  const watch = (opened: Lab) => new TreeWatcher(watchedRoots(opened, scenariosDir), (file) => isNoise(file) || edits.add(file), labOwnDirs(opened));
  let watcher = watch(lab);
  let changes: Changes | 'everything' = 'everything';
  for (;;) {
    const started = Date.now();
    const what = changes === 'everything' ? 'start' : `${listed([...changes.scenarios, ...changes.scenarioSupport, ...changes.lab])} changed`;
    let line: string;
    try {
      line = await cycle(lab, changes, asked(), scenariosDir, options);
    } catch (error) {
      if (!(error instanceof LabError)) throw error;
      line = failureLine(error);
    }
    const [summary, ...details] = line.split('\n');
    options.print([`[${new Date().toTimeString().slice(0, 8)}] ${what} · ${summary} · ${((Date.now() - started) / 1000).toFixed(1)} s`, ...details].join('\n'));
    for (;;) {
      changes = classifyChanges(await edits.next(), scenariosDir, new Set(listScenarios(scenariosDir).values()));
      if (changes.lab.length === 0) break;
      try {
        lab = await reopen(); // the config, stage modules and their keys as they are now
      } catch (error) {
        if (!(error instanceof LabError)) throw error;
        options.print(`[${new Date().toTimeString().slice(0, 8)}] ${listed(changes.lab)} changed · ${error.message.split('\n')[0]} · waiting for the next edit`);
        continue;
      }
      for (const file of changes.lab) if (file.endsWith('.ts') && file.startsWith(`${builtinStageSources()}/`)) await compileBuiltinStage(file);
      if (changes.lab.some((f) => f === lab.configFile)) {
        watcher.close();
        watcher = watch(lab);
      }
      break;
    }
  }
}

/** A cycle that failed, said short: a stage with its exit code, the end of its log and where the rest is; anything else as lab says it. */
export function failureLine(error: LabError): string {
  if (!(error instanceof StageError)) return `${error.summary}${error.hint ? ` (${error.hint})` : ''}`;
  const exit = error.commandEnd;
  // The log's own lines (the command, its exit) left out: what the stage printed last.
  const printed = error.logFile && existsSync(error.logFile) ? readFileSync(error.logFile, 'utf8').split('\n').filter((l) => l.trim() && !l.startsWith('$ ') && !/^\[exit /.test(l)) : [];
  const tail = printed.slice(-LOG_TAIL_LINES);
  return [`stage ${error.machine}@${error.stage} failed${exit ? ` (${exit})` : ''}${error.logFile ? `, log: ${error.logFile}` : ''}`, ...tail.map((l) => `  | ${l}`)].join('\n');
}

/** One cycle, holding the lab's lock: what it did, in a few words, and the failures on lines under it. */
async function cycle(lab: Lab, changes: Changes | 'everything', selected: string[], scenariosDir: string, options: WatchOptions): Promise<string> {
  return holdingLock(lab.dirs.lockFile, 'test --watch', async () => {
    const rebuilt: string[] = [];
    let touched = new Set<string>();
    if (changes === 'everything' || changes.lab.length > 0) {
      const report = await up(lab, { waitForLock: true });
      touched = touchedMachines(report);
      rebuilt.push(...report.machines.flatMap((m) => m.stages.filter((s) => s.action === 'build').map((s) => `${m.name}@${s.name}`)));
    }
    const machines = lab.config.machines.map((m) => m.name);
    const files = changes === 'everything' ? selected : scenariosToRun(selected, changes, touched, machines, (f) => readFileSync(f, 'utf8'));
    const built = changes === 'everything' || changes.lab.length > 0 ? `${rebuilt.length ? `built ${listed(rebuilt, 4)}` : 'built nothing'}${touched.size ? `, booted ${listed([...touched], 4)}` : ''} · ` : '';
    if (files.length === 0) return `${built}no scenario uses what changed`;
    const collector = await runScenarioFiles(lab, files, scenariosDir, { renderer: 'silent', serial: options.serial });
    await lab.faults.clearAll(); // each test undoes its own link faults; a worker that died could not
    const counts = countTests(collector.scenarios, collector.unhandled);
    const failures = collector.scenarios.flatMap((s) => [
      ...s.errors.map((e) => `  ✗ ${s.name}: ${e.message.split('\n')[0]}`),
      ...s.tests.filter((t) => t.outcome === 'failed').map((t) => `  ✗ ${s.name} > ${t.name}: ${t.errors[0]?.message.split('\n')[0] ?? 'failed'}`),
    ]);
    const ran = listed(collector.scenarios.map((s) => s.name), 4);
    return `${built}ran ${ran}: ${counts.passed} passed, ${counts.failed} failed${failures.length ? `\n${failures.join('\n')}` : ''}`;
  });
}

/** The paths changed since the last `next()`, handed over once edits have settled. */
class EditQueue {
  private files: string[] = [];
  private waiting?: (files: string[]) => void;
  private timer?: NodeJS.Timeout;

  add(file: string): void {
    this.files.push(file);
    if (!this.waiting) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.handOver(), SETTLE_MS);
  }

  /** Waits for the next edit, for as long as it takes: the user ends watch mode with Ctrl-C. */
  next(): Promise<string[]> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      if (this.files.length > 0) this.timer = setTimeout(() => this.handOver(), SETTLE_MS);
    });
  }

  private handOver(): void {
    const resolve = this.waiting!;
    this.waiting = undefined;
    const files = this.files;
    this.files = [];
    resolve(files);
  }
}
