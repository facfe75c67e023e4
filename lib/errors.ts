/**
 * Typed errors. Each carries the exit code the CLI ends with (EXIT): a failure of what was
 * tested or built, bad usage, a host that cannot, and the lab's machinery failing are told apart.
 */
export const EXIT = {
  /** A stage, a check, a scenario or an assertion failed. */
  FAILED: 1,
  /** Bad usage or config: nothing was touched. */
  USAGE: 2,
  /** The host cannot do what was asked: not root, a tool missing, the lab busy. */
  HOST: 3,
  /** A machine or the lab's infrastructure failed: a machine that does not start, a wait for it that timed out. */
  INFRA: 4,
  /** A bug of lab's own: an error that is not a LabError. */
  INTERNAL: 70,
  /** lab is being interrupted (SIGINT, as a shell reports it). */
  INTERRUPTED: 130,
} as const;

export class LabError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    readonly hint?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }

  /**
   * The failure in one line, for a progress line: the message's first line, but a failed command
   * said without its argv (hundreds of characters), which the whole message shows.
   */
  get summary(): string {
    return this.message.split('\n')[0]!;
  }
}

export class UsageError extends LabError {
  constructor(message: string, hint?: string) {
    super(message, EXIT.USAGE, hint);
  }
}

export class HostError extends LabError {
  constructor(message: string, hint?: string) {
    super(message, EXIT.HOST, hint);
  }
}

export class StageError extends LabError {
  readonly machine: string;
  readonly stage: string;
  readonly logFile?: string;
  /** How the stage's command ended when one failed it (`exit code 3`, `timed out after 600000 ms`). */
  readonly commandEnd?: string;
  private readonly oneLine?: string;

  /** `summary`: the failure in one line when the message's first line quotes a command (see LabError.summary). */
  constructor(message: string, where: { machine: string; stage: string; logFile?: string; hint?: string; summary?: string; commandEnd?: string }) {
    super(message, EXIT.FAILED, where.hint);
    this.machine = where.machine;
    this.stage = where.stage;
    this.logFile = where.logFile;
    this.commandEnd = where.commandEnd;
    this.oneLine = where.summary;
  }

  override get summary(): string {
    return this.oneLine ?? super.summary;
  }
}

/** What a stage's own code or content got wrong (a fixture it did not list, a template value it lacks): the build fails, as a stage does. */
export class BuildFailure extends LabError {
  constructor(message: string, hint?: string) {
    super(message, EXIT.FAILED, hint);
  }
}

/** An assertion about a machine that did not hold: a test's verdict, not a broken lab. */
export class AssertionFailure extends LabError {
  /** `result`: the command whose outcome failed the assertion (a RunResult; exec.ts imports this module, not the reverse). */
  constructor(message: string, readonly result?: { argv: readonly string[]; exitCode: number; stdout: string; stderr: string }) {
    super(message, EXIT.FAILED);
  }
}

/** A machine or the lab's own machinery failed (not what was built or tested): a machine that does not start, or is not running. */
export class InfraError extends LabError {
  constructor(message: string, hint?: string) {
    super(message, EXIT.INFRA, hint);
  }
}

/** A wait that ran out of time (see poll in wait.ts). */
export class TimeoutError extends InfraError {}

/** A command refused because lab is being interrupted. */
export class Interrupted extends LabError {
  constructor(message: string) {
    super(message, EXIT.INTERRUPTED);
  }
}

/** The closest candidate by edit distance, to suggest on a typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 2)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}

/** "unknown stage 'proxi' (valid: a, b; did you mean 'proxy'?)" */
export function unknownName(kind: string, name: string, valid: readonly string[]): UsageError {
  const suggestion = closest(name, valid);
  return new UsageError(
    `unknown ${kind} '${name}' (valid: ${valid.join(', ') || 'none'}${suggestion ? `; did you mean '${suggestion}'?` : ''})`,
  );
}
