import path from 'node:path';
import { packageRoot } from '../paths.js';
import type { Problem } from './problem.js';

/** What a scenario directory is compiled with when no tsconfig.json is found above it: what `lab init` writes. */
const DEFAULT_OPTIONS = { strict: true, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', skipLibCheck: true };

/**
 * Type-checks scenario files as `tsc --noEmit` would, with the tsconfig.json nearest above `dir`
 * (its compiler options; the files are these), else strict defaults: every error of the files and
 * of what they import, with its file, line and column. TypeScript is loaded only here.
 *
 * Lab's own sources are not checked (its build does that): inside lab's repository, TypeScript
 * resolves the package's self-reference to them, and checking them all took 3 times as long.
 */
export async function scenarioTypeProblems(files: readonly string[], dir: string): Promise<Problem[]> {
  const ts = (await import('typescript')).default;
  const configFile = ts.findConfigFile(dir, ts.sys.fileExists);
  const problems: Problem[] = [];
  const report = (diagnostic: import('typescript').Diagnostic) => {
    const message = `TS${diagnostic.code}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`;
    if (!diagnostic.file || diagnostic.start === undefined) return problems.push({ file: configFile, message });
    const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    return problems.push({ file: diagnostic.file.fileName, line: line + 1, column: character + 1, message });
  };
  let options: import('typescript').CompilerOptions;
  if (configFile) {
    const parsed = ts.getParsedCommandLineOfConfigFile(configFile, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: report });
    if (!parsed) return problems;
    parsed.errors.filter((e) => e.code !== NO_INPUTS).forEach(report);
    options = parsed.options;
  } else {
    options = ts.convertCompilerOptionsFromJson(DEFAULT_OPTIONS, dir).options;
  }
  // No declarations: nothing is emitted, and their diagnostics are an emit's.
  const program = ts.createProgram([...files], { ...options, noEmit: true, declaration: false });
  const diagnostics = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()];
  for (const source of program.getSourceFiles()) {
    if (source.isDeclarationFile || LAB_SOURCES.some((dir) => source.fileName.startsWith(dir))) continue;
    diagnostics.push(...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source));
  }
  ts.sortAndDeduplicateDiagnostics(diagnostics).forEach(report);
  return problems;
}

const LAB_SOURCES = ['lib', 'stages'].map((dir) => path.join(packageRoot, dir) + path.sep);

/** "No inputs were found in config file": a tsconfig.json whose `include` names none of the scenarios is still the options they compile with. */
const NO_INPUTS = 18003;
