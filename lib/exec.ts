import { execa, type ResultPromise } from 'execa';
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, openSync } from 'node:fs';
import { LabError } from './errors.js';

export interface RunOptions {
  /** Milliseconds before the command is killed; every command has one. */
  timeout?: number;
  input?: string;
  env?: Record<string, string>;
  cwd?: string;
  /** Append the argv and the whole output to this file, as it comes. */
  logFile?: string;
  /** Called with each line of output as it comes (progress of long commands). */
  onLine?: (line: string) => void;
  /** Do not throw on a non-zero exit; the caller inspects `exitCode`. */
  allowFailure?: boolean;
  /** Pass the terminal through (interactive shells). Output is not captured. */
  inherit?: boolean;
}

export interface RunResult {
  argv: readonly string[];
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

const DEFAULT_TIMEOUT_MS = 120_000;
const TAIL_LINES = 20;

/** A command that failed: the argv, the exit code and the tail of its output travel with it. */
export class CommandError extends LabError {
  constructor(readonly result: RunResult, readonly reason: string, readonly timedOut = false) {
    super(`command failed (${reason}): ${formatArgv(result.argv)}\n${tail(result.stdout + result.stderr, TAIL_LINES)}`, 1);
  }
}

export function formatArgv(argv: readonly string[]): string {
  return argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`)).join(' ');
}

export function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * Runs one external command: argv only (never a shell string), always with a timeout,
 * output captured and carried into the error when it fails.
 */
export async function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (!file) throw new LabError('run: empty argv', 3);
  const started = Date.now();
  if (options.logFile) appendFileSync(options.logFile, `$ ${formatArgv(argv)}\n`);
  const subprocess = execa(file, args, {
    timeout: options.timeout ?? DEFAULT_TIMEOUT_MS,
    input: options.input,
    env: options.env,
    cwd: options.cwd,
    reject: false,
    stdin: options.inherit ? 'inherit' : options.input === undefined ? 'ignore' : 'pipe',
    stdout: options.inherit ? 'inherit' : 'pipe',
    stderr: options.inherit ? 'inherit' : 'pipe',
    stripFinalNewline: false,
  });
  const flush = !options.inherit && (options.logFile || options.onLine) ? streamOutput(subprocess, options.logFile, options.onLine) : undefined;
  const child = await subprocess;
  flush?.();
  const result: RunResult = {
    argv,
    exitCode: child.exitCode ?? -1,
    stdout: typeof child.stdout === 'string' ? child.stdout : '',
    stderr: typeof child.stderr === 'string' ? child.stderr : '',
    durationMs: Date.now() - started,
  };
  if (options.logFile) appendFileSync(options.logFile, `[exit ${result.exitCode}, ${result.durationMs} ms]\n`);
  const reason = child.timedOut
    ? `timed out after ${options.timeout ?? DEFAULT_TIMEOUT_MS} ms`
    : child.failed && child.exitCode === undefined
      ? (child.signal ? `killed by ${child.signal}` : (child.shortMessage ?? 'could not start'))
      : `exit code ${result.exitCode}`;
  if (child.timedOut || (child.exitCode === undefined && child.failed)) throw new CommandError(result, reason, child.timedOut);
  if (result.exitCode !== 0 && !options.allowFailure) throw new CommandError(result, reason);
  return result;
}

/** Copies output to the log file and hands out whole lines while the command runs; returns what to call at its end. */
function streamOutput(subprocess: ResultPromise, logFile: string | undefined, onLine: ((line: string) => void) | undefined): () => void {
  const pending = ['', ''];
  [subprocess.stdout, subprocess.stderr].forEach((stream, i) => {
    stream?.on('data', (chunk: Buffer) => {
      if (logFile) appendFileSync(logFile, chunk);
      if (!onLine) return;
      const lines = (pending[i] + chunk.toString('utf8')).split('\n');
      pending[i] = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) onLine(line);
    });
  });
  return () => {
    for (const rest of pending) if (rest.trim() && onLine) onLine(rest);
    if (logFile && !pending.every((rest) => rest === '')) appendFileSync(logFile, '\n');
  };
}

/**
 * Starts a long-running process that outlives `lab` (its own session, output to a log file).
 * Returns its pid; the caller records it to stop it later by pid.
 */
export function spawnDetached(argv: readonly string[], logFile: string): number {
  const [file, ...args] = argv;
  if (!file) throw new LabError('spawnDetached: empty argv', 3);
  appendFileSync(logFile, `$ ${formatArgv(argv)}\n`);
  const out = openSync(logFile, 'a');
  try {
    const child = spawn(file, args, { detached: true, stdio: ['ignore', out, out] });
    if (child.pid === undefined) throw new LabError(`could not start ${formatArgv(argv)}`, 3);
    child.unref();
    return child.pid;
  } finally {
    closeSync(out);
  }
}
