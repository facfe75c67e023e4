import path from 'node:path';

/** One thing `lab validate` found wrong: where (when the check that found it says), and what. */
export interface Problem {
  file?: string;
  line?: number;
  column?: number;
  message: string;
}

/** `file:line:column: message`, the file relative to `cwd` (as compilers print it, so that editors and terminals link it). */
export function formatProblem(problem: Problem, cwd = process.cwd()): string {
  if (!problem.file) return problem.message;
  const relative = path.relative(cwd, problem.file);
  const file = relative.startsWith('..') ? problem.file : relative;
  return `${[file, problem.line, problem.column].filter((part) => part !== undefined).join(':')}: ${problem.message}`;
}
