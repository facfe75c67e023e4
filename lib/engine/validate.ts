import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { locateConfig, pathProblems, readConfigInput, resolveConfigPaths } from '../config/load.js';
import type { LabConfig } from '../config/schema.js';
import { topologyOf } from '../config/topology.js';
import { UsageError } from '../errors.js';
import { isLabModule, loadLab, STAGE_EXTENSIONS } from '../stages/load.js';
import { parseStageHeader } from '../stages/shell.js';
import { toolCommand } from '../stages/tools.js';
import { configProblems } from '../validate/config.js';
import { formatProblem, type Problem } from '../validate/problem.js';
import { scenarioTypeProblems } from '../validate/scenarios.js';
import { hasTool, manifestProblems, playbookProblems, shellProblems, SYNTAX_TOOLS, type SyntaxTool } from '../validate/syntax.js';
import { defaultScenariosDir, listScenarios } from './test.js';

export interface ValidateOptions {
  /** --config; otherwise lab.config.* in `cwd`, otherwise the default lab. */
  file?: string;
  cwd?: string;
  name?: string;
  runtime?: string;
  /** --scenarios; otherwise scenarios/ beside the config, as lab test finds them. */
  scenariosDir?: string;
}

export interface ValidateReport {
  configFile?: string;
  problems: Problem[];
  machines: number;
  /** Files checked, by the check that read them (`sh -n`, `tsc`, ...). */
  checked: Record<string, number>;
  /** The checks the files asked for that the host cannot make (the tool is not installed). */
  notInstalled: string[];
}

/** How a stage file's syntax is checked, by its extension; TypeScript goes to the type check with the scenarios. */
const SYNTAX_CHECKS: Record<string, SyntaxTool[]> = { '.sh': ['sh', 'shellcheck'], '.pp': ['puppet'], '.yml': ['ansible'], '.yaml': ['ansible'] };
const TYPE_CHECK = 'tsc --noEmit';

/**
 * `lab validate`: the config (every problem of its shape, with its line in a YAML or JSON file), the
 * stages (their files found, headers, fixtures, binds), each stage file's syntax by its own tool, the
 * controller's playbooks, and that the scenarios and TypeScript stages compile (a type check). As
 * any user, touching nothing of the host's: no lock, no state or cache directory, no config cache.
 * Each part is checked even when another has problems, so that all of them are listed at once.
 */
export async function validate(options: ValidateOptions = {}): Promise<ValidateReport> {
  const cwd = options.cwd ?? process.cwd();
  const report: ValidateReport = { problems: [], machines: 0, checked: {}, notInstalled: [] };
  const problems: Problem[] = [];
  const count = (check: string) => (report.checked[check] = (report.checked[check] ?? 0) + 1);
  let file: string | undefined;
  try {
    file = locateConfig(options.file, cwd);
  } catch (error) {
    return { ...report, problems: [usageProblem(error, undefined)] };
  }
  report.configFile = file;

  let config: LabConfig | undefined;
  try {
    const checked = configProblems(await readConfigInput(file, options), file);
    problems.push(...checked.problems);
    if (checked.config) {
      config = resolveConfigPaths(checked.config, file, cwd);
      problems.push(...pathProblems(config, file, cwd).map((message) => ({ file, message })));
      report.machines = config.machines.length;
    }
  } catch (error) {
    problems.push(usageProblem(error, file));
  }
  count('config');

  // The stages the config names, loaded as lab up loads them; then every stage file, those of the lab's own stages/ too.
  const besideConfig = (dir: string) => (file && existsSync(path.join(path.dirname(file), dir)) ? path.join(path.dirname(file), dir) : undefined);
  const stagesDir = config ? config.stagesDir : besideConfig('stages');
  const fixturesDir = config?.fixturesDir ?? besideConfig('fixtures');
  const stageFiles = new Map<string, string>(); // file -> its machine
  if (config) {
    const messages: string[] = [];
    const loaded = await loadLab(config, topologyOf(config), file, messages);
    problems.push(...messages.map(stageProblem));
    for (const machine of loaded.machines) for (const stage of machine.stages.filter((s) => !isLabModule(s.file))) stageFiles.set(stage.file, machine.name);
    for (const stage of loaded.controller.filter((s) => s.config.playbook)) {
      if (!hasTool('ansible')) continue;
      count(SYNTAX_TOOLS.ansible.shown);
      const { controllerArgv } = await import('./controller.js');
      const { inventoryOf, inventoryYamlObject } = await import('../controller/inventory.js');
      const { stringify } = await import('yaml');
      problems.push(
        ...(await playbookProblems((scratch) => {
          const inventory = path.join(scratch, 'inventory.yml');
          writeFileSync(inventory, stringify(inventoryYamlObject(inventoryOf(config, topologyOf(config)))));
          return controllerArgv(stage, { inventory });
        }, stage.config.playbook!, { cwd: stage.cwd })),
      );
    }
    if (loaded.controller.some((s) => s.config.playbook) && !hasTool('ansible')) report.notInstalled.push(SYNTAX_TOOLS.ansible.shown);
  }
  for (const found of stagesDir ? listStageFiles(stagesDir) : []) {
    if (stageFiles.has(found)) continue;
    stageFiles.set(found, path.basename(path.dirname(found)));
    // Not named by the config (or the config is wrong): its header at least, as the config would load it.
    if (SYNTAX_CHECKS[path.extname(found)]) {
      try {
        parseStageHeader(readFileSync(found, 'utf8'), found);
      } catch (error) {
        if (!(error instanceof UsageError)) throw error;
        problems.push(stageProblem(error.message));
      }
    }
  }
  for (const [stage, machine] of stageFiles) {
    for (const tool of SYNTAX_CHECKS[path.extname(stage)] ?? []) {
      if (!hasTool(tool)) {
        report.notInstalled.push(SYNTAX_TOOLS[tool].shown);
        continue;
      }
      count(SYNTAX_TOOLS[tool].shown);
      if (tool === 'sh') problems.push(...(await shellProblems(stage)));
      if (tool === 'puppet') problems.push(...(await manifestProblems(stage)));
      if (tool === 'ansible') {
        const { argv } = toolCommand('ansible', stage, machine, config?.zone.domain ?? 'prolo', [], fixturesDir);
        problems.push(...(await playbookProblems(() => argv, stage, { cwd: path.dirname(stage) })));
      }
    }
  }

  // The scenarios as lab test finds them, and the TypeScript stages: one type check.
  const scenariosDir = options.scenariosDir ? path.resolve(cwd, options.scenariosDir) : defaultScenariosDir({ configFile: file });
  const scenarios = [...listScenarios(scenariosDir).values()];
  const typed = [...scenarios, ...[...stageFiles.keys()].filter((f) => f.endsWith('.ts'))];
  if (typed.length > 0) {
    problems.push(...(await scenarioTypeProblems(typed, existsSync(scenariosDir) ? scenariosDir : path.dirname(typed[0]!))));
    report.checked[TYPE_CHECK] = typed.length;
  }

  // A problem found twice (a header read by the config's stage and again as a file of stages/) is listed once.
  const seen = new Set<string>();
  report.problems = problems.filter((p) => !seen.has(formatProblem(p)) && seen.add(formatProblem(p)));
  report.notInstalled = [...new Set(report.notInstalled)];
  return report;
}

/** Every stage file of a stages directory: `<machine>/<stage>.<extension>`. */
function listStageFiles(stagesDir: string): string[] {
  if (!existsSync(stagesDir)) return [];
  return readdirSync(stagesDir, { withFileTypes: true })
    .filter((machine) => machine.isDirectory())
    .flatMap((machine) =>
      readdirSync(path.join(stagesDir, machine.name))
        .filter((f) => STAGE_EXTENSIONS.includes(path.extname(f)) && !f.endsWith('.d.ts'))
        .sort()
        .map((f) => path.join(stagesDir, machine.name, f)),
    );
}

/** A stage's problem; `stage <file>:<line>: ...` (a header's) with its file and line. */
function stageProblem(message: string): Problem {
  const at = /^stage (\/.+?):(\d+): (.*)$/s.exec(message);
  return at ? { file: at[1], line: Number(at[2]), message: at[3]! } : { message };
}

/** A usage error as a problem; a YAML parser's `at line 3, column 5` is its line. */
function usageProblem(error: unknown, file: string | undefined): Problem {
  if (!(error instanceof UsageError)) throw error;
  const at = /at line (\d+), column (\d+)/.exec(error.message);
  return { file, line: at ? Number(at[1]) : undefined, column: at ? Number(at[2]) : undefined, message: error.message };
}

/** What lab validate prints when everything passed: what it checked, and what it could not. */
export function validateSummary(report: ValidateReport, cwd = process.cwd()): string {
  const checked = Object.entries(report.checked).filter(([check]) => check !== 'config').map(([check, n]) => `${check}: ${n} file${n === 1 ? '' : 's'}`);
  const config = report.configFile ? path.relative(cwd, report.configFile) || report.configFile : 'the default lab';
  return [`lab validate: no problem in ${config} (${report.machines} machines)${checked.length ? `; ${checked.join(', ')}` : ''}`, ...report.notInstalled.map((check) => `not checked: ${check} (not installed)`)].join('\n');
}
