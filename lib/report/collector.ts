import path from 'node:path';
import type { Reporter, SerializedError, TestCase, TestModule } from 'vitest/node';

export type Outcome = 'passed' | 'failed' | 'skipped';

export interface TestResult {
  name: string;
  outcome: Outcome;
  startedAt: number;
  durationMs: number;
  /** For a failure: the message (command, exit code, output) and where it was thrown. */
  errors: { message: string; stack?: string }[];
  journals: Record<string, string>;
}

export interface ScenarioResult {
  /** The scenario's file, relative to the scenarios directory, without `.test.ts`. */
  name: string;
  file: string;
  outcome: Outcome;
  startedAt: number;
  durationMs: number;
  tests: TestResult[];
  /** Errors outside any test: the file did not load, a hook failed. */
  errors: { message: string; stack?: string }[];
  /** lab test --capture, a failing scenario: its pcaps, one per network, relative to the run's directory. */
  captures?: string[];
}

export function scenarioName(file: string, scenariosDir: string): string {
  return path.relative(scenariosDir, file).replace(/\.test\.[cm]?[jt]s$/, '');
}

function errorsOf(errors: ReadonlyArray<SerializedError> | undefined): { message: string; stack?: string }[] {
  return (errors ?? []).map((e) => ({ message: String(e.message ?? e), stack: e.stack }));
}

function testResult(test: TestCase): TestResult {
  const result = test.result();
  const diagnostic = test.diagnostic();
  return {
    name: test.fullName,
    outcome: result.state === 'passed' ? 'passed' : result.state === 'failed' ? 'failed' : 'skipped',
    startedAt: diagnostic?.startTime ?? 0,
    durationMs: diagnostic?.duration ?? 0,
    errors: result.state === 'failed' ? errorsOf(result.errors) : [],
    journals: test.meta().labJournals ?? {},
  };
}

/** Gathers what vitest ran, for the reports `lab test` writes. */
export class ResultCollector implements Reporter {
  scenarios: ScenarioResult[] = [];
  unhandled: { message: string; stack?: string }[] = [];

  constructor(private readonly scenariosDir: string) {}

  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>): void {
    this.unhandled = errorsOf(unhandledErrors);
    this.scenarios = modules.map((module) => {
      const tests = [...module.children.allTests()].map(testResult);
      const errors = errorsOf(module.errors());
      const starts = tests.map((t) => t.startedAt).filter((t) => t > 0);
      const startedAt = starts.length ? Math.min(...starts) : 0;
      const failed = errors.length > 0 || tests.some((t) => t.outcome === 'failed') || module.state() === 'failed';
      return {
        name: scenarioName(module.moduleId, this.scenariosDir),
        file: module.moduleId,
        outcome: failed ? 'failed' : tests.every((t) => t.outcome === 'skipped') ? 'skipped' : 'passed',
        startedAt,
        durationMs: module.diagnostic().duration,
        tests,
        errors,
      };
    });
  }

  get failed(): boolean {
    return this.unhandled.length > 0 || this.scenarios.some((s) => s.outcome === 'failed');
  }
}
