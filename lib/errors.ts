/**
 * Typed errors. Each carries the exit code the CLI ends with:
 * 2 = bad usage or config (nothing was touched), 1 = a stage or a check failed,
 * 3 = the host cannot do what was asked (missing tool, not root, lock held).
 */
export class LabError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    readonly hint?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class UsageError extends LabError {
  constructor(message: string, hint?: string) {
    super(message, 2, hint);
  }
}

export class HostError extends LabError {
  constructor(message: string, hint?: string) {
    super(message, 3, hint);
  }
}

export class StageError extends LabError {
  constructor(
    message: string,
    readonly machine: string,
    readonly stage: string,
    readonly logFile?: string,
    hint?: string,
  ) {
    super(message, 1, hint);
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
