import { LabError, StageError } from '../errors.js';
import { CommandError } from '../exec.js';

export interface StageFailure {
  machine: string;
  stage: string;
  /** An offline run leaves the machine stopped; an online run or a check fails with it running, and leaves it so. */
  step: 'run' | 'online run' | 'check' | 'ready';
  error: unknown;
  /** The stage's log, when it has one. */
  log?: string;
  /** The name the failed state was kept under, to restore it later. */
  kept?: string;
}

const TIMEOUT_HINT = "a stage's commands end at its timeout: '# lab: timeout=30m' in its header, timeoutSeconds in its definition, or stageLimits.timeoutSeconds in the config";

/** A stage's failure as the user reads it: what failed, then where to look (inside the machine, its log, its kept root). */
export function stageFailure({ machine, stage, step, error, log, kept }: StageFailure): StageError {
  const detail = error instanceof LabError ? error.message : String((error as Error)?.stack ?? error);
  const hints = [
    ...(error instanceof CommandError && error.timedOut && step !== 'check' && step !== 'ready' ? [TIMEOUT_HINT] : []),
    ...(step === 'run' ? [] : [`the machine is still running: look inside with 'lab shell ${machine}'`]),
    ...(log ? [`full log: ${log}`] : []),
    ...(kept ? [`its root at the failure is kept: lab restore ${kept}`] : []),
  ];
  const headline = `stage ${machine}@${stage} failed (${step})`;
  return new StageError(`${headline}: ${detail}`, { machine, stage, logFile: log, hint: hints.join('; '), summary: `${headline}: ${error instanceof LabError ? error.summary : detail.split('\n')[0]}`, commandEnd: error instanceof CommandError ? error.reason : undefined });
}
