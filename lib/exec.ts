import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, openSync } from 'node:fs';
import { interruptionPhase } from './interrupt.js';
import { EXIT, HostError, Interrupted, LabError } from './errors.js';

export interface RunOptions {
  /** Milliseconds before the command is ended; every command has one. */
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
  /**
   * Ends what the command started beyond its own process group (inside a machine, where its
   * children are not the host's children): called on timeout and on `abort`.
   */
  endAll?: () => Promise<void>;
  /** Ends the command (and `endAll`) when it fires, as a timeout does. */
  abort?: AbortSignal;
}

export interface RunResult {
  argv: readonly string[];
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

const DEFAULT_TIMEOUT_MS = 120_000;
/** After the command is killed, how long its output may stay open (a child that escaped holds it) before lab stops reading. */
const DRAIN_MS = 2000;
const TAIL_LINES = 20;

/** A command that failed: the argv, the exit code and the tail of its output travel with it. */
export class CommandError extends LabError {
  constructor(readonly result: RunResult, readonly reason: string, readonly timedOut = false) {
    super(`command failed (${reason}): ${formatArgv(result.argv)}\n${tail(result.stdout + result.stderr, TAIL_LINES)}`, EXIT.FAILED);
  }
}

export function formatArgv(argv: readonly string[]): string {
  return argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`)).join(' ');
}

export function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

let setpriv: string | undefined | null = null;

/** `setpriv --pdeathsig KILL` before the command, where util-linux's setpriv is there. */
function withParentDeathSignal(argv: string[]): string[] {
  if (setpriv === null) setpriv = ['/usr/bin/setpriv', '/bin/setpriv', '/usr/sbin/setpriv'].find((f) => existsSync(f));
  return setpriv ? [setpriv, '--pdeathsig', 'KILL', ...argv] : argv;
}

/** Commands running now, each with what ends it: on an interruption of lab, all of them are ended. */
const running = new Map<ChildProcess, { end(): void; settled: Promise<unknown> }>();

/** Ends every command lab is running (and what they started in machines); resolves once they are gone. */
export async function interruptCommands(): Promise<number> {
  const all = [...running.values()];
  for (const command of all) command.end();
  await Promise.allSettled(all.map((c) => c.settled));
  return all.length;
}

/** Kills a process group, or the process alone when it is gone already. */
function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}

/**
 * Runs one external command: argv only (never a shell string), always with a timeout, output
 * captured and carried into the error when it fails. On timeout the command's whole process group
 * is killed, then `endAll` ends what it started elsewhere, and the call returns even if an escaped
 * child still holds its output open: a timeout is never a hang.
 */
export async function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (!file) throw new TypeError('run: empty argv'); // a bug of the caller's, not a state of the host
  if (interruptionPhase() === 'ending') throw new Interrupted(`not started, lab is being interrupted: ${formatArgv(argv)}`);
  const timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
  const started = Date.now();
  if (options.logFile) appendFileSync(options.logFile, `$ ${formatArgv(argv)}\n`);
  // Parent-death signal: if lab is killed (SIGKILL cannot be caught), the command dies with it and
  // does not go on writing (a snapshot appearing after the next command cleaned up, say).
  const [command, ...commandArgs] = withParentDeathSignal([file, ...args]);
  const child = spawn(command!, commandArgs, {
    env: options.env ? { ...process.env, ...options.env } : process.env,
    cwd: options.cwd,
    // Its own process group, so that a timeout ends it with all it forked on the host; not for an interactive command, which must stay in the terminal's foreground group.
    detached: !options.inherit,
    stdio: options.inherit ? 'inherit' : [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  const pending = ['', ''];
  const onData = (into: Buffer[], index: number) => (chunk: Buffer) => {
    into.push(chunk);
    if (options.logFile) appendFileSync(options.logFile, chunk);
    if (!options.onLine) return;
    const lines = (pending[index] + chunk.toString('utf8')).split('\n');
    pending[index] = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) options.onLine(line);
  };
  child.stdout?.on('data', onData(stdout, 0));
  child.stderr?.on('data', onData(stderr, 1));
  if (options.input !== undefined) {
    child.stdin?.on('error', () => undefined); // a command that exits without reading its input
    child.stdin?.end(options.input);
  }

  let ended: 'timeout' | 'abort' | undefined;
  let interrupt = () => undefined as void;
  const settled = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    const finish = (result: { code: number | null; signal: NodeJS.Signals | null; error?: Error }) => {
      clearTimeout(timer);
      options.abort?.removeEventListener('abort', onAbort);
      resolve(result);
    };
    const end = (why: 'timeout' | 'abort') => {
      if (ended) return;
      ended = why;
      killGroup(child);
      void (options.endAll?.() ?? Promise.resolve()).catch(() => undefined).finally(() => {
        // What escaped both still holds the pipes: stop reading them rather than wait forever.
        setTimeout(() => {
          child.stdout?.destroy();
          child.stderr?.destroy();
          finish(exited ?? { code: null, signal: 'SIGKILL' });
        }, DRAIN_MS).unref();
      });
    };
    const onAbort = () => end('abort');
    interrupt = onAbort;
    const timer = setTimeout(() => end('timeout'), timeout);
    options.abort?.addEventListener('abort', onAbort);
    if (options.abort?.aborted) onAbort();
    child.on('error', (error) => finish({ code: null, signal: null, error }));
    child.on('exit', (code, signal) => (exited = { code, signal }));
    child.on('close', (code, signal) => finish({ code, signal }));
  });
  running.set(child, { end: interrupt, settled });
  const outcome = await settled.finally(() => running.delete(child));

  for (const [i, rest] of pending.entries()) if (rest.trim()) options.onLine?.(rest), (pending[i] = '');
  const result: RunResult = {
    argv,
    exitCode: outcome.code ?? -1,
    stdout: Buffer.concat(stdout).toString('utf8'),
    stderr: Buffer.concat(stderr).toString('utf8'),
    durationMs: Date.now() - started,
  };
  if (options.logFile) appendFileSync(options.logFile, `\n[exit ${result.exitCode}, ${result.durationMs} ms]\n`);
  if (ended === 'timeout') throw new CommandError(result, `timed out after ${timeout} ms`, true);
  if (ended === 'abort') throw new CommandError(result, 'interrupted');
  if (outcome.error) throw new CommandError(result, `could not start: ${outcome.error.message}`);
  if (outcome.code === null) throw new CommandError(result, `killed by ${outcome.signal}`);
  if (result.exitCode !== 0 && !options.allowFailure) throw new CommandError(result, `exit code ${result.exitCode}`);
  return result;
}

/**
 * Starts a long-running process that outlives `lab` (its own session, output to a log file).
 * Returns its pid; the caller records it to stop it later by pid.
 */
export function spawnDetached(argv: readonly string[], logFile: string): number {
  const [file, ...args] = argv;
  if (!file) throw new TypeError('spawnDetached: empty argv');
  appendFileSync(logFile, `$ ${formatArgv(argv)}\n`);
  const out = openSync(logFile, 'a');
  try {
    const child = spawn(file, args, { detached: true, stdio: ['ignore', out, out] });
    if (child.pid === undefined) throw new HostError(`could not start ${formatArgv(argv)}`);
    child.unref();
    return child.pid;
  } finally {
    closeSync(out);
  }
}
