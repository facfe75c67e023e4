import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, openSync, statSync } from 'node:fs';
import type { Server } from 'node:net';
import { interruptionPhase } from './interrupt.js';
import { EXIT, HostError, InfraError, Interrupted, LabError } from './errors.js';
import { FAST, poll } from './wait.js';

export interface RunOptions {
  /** Milliseconds before the command is ended; every command has one. */
  timeout?: number;
  input?: string;
  env?: Record<string, string>;
  cwd?: string;
  /** Append the argv and the output to this file, as it comes, up to `logLimitBytes` of it. */
  logFile?: string;
  /** Where `logFile` stops growing (all it held before included): then a line says how much was dropped. Default 64 MiB. */
  logLimitBytes?: number;
  /**
   * Bytes of each stream kept in memory, the last ones: a command may print more than lab can hold.
   * Default 1 MiB with a `logFile` (which has the rest, up to its limit), 64 MiB otherwise.
   */
  keepBytes?: number;
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
  /** Lines of output that say nothing of the command (a notice of the tool that runs it): left out of its log, its result and its error. */
  dropLines?: RegExp;
}

export interface RunResult {
  argv: readonly string[];
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
  /** Bytes of output not kept in memory (the start of a stream longer than `keepBytes`); absent when none. */
  cutBytes?: number;
}

const DEFAULT_TIMEOUT_MS = 120_000;
/** After the command is killed, how long its output may stay open (a child that escaped holds it) before lab stops reading. */
const DRAIN_MS = 2000;
const TAIL_LINES = 20;
export const MiB = 1024 * 1024;
const DEFAULT_LOG_LIMIT_BYTES = 64 * MiB;
const KEPT_WITH_LOG_BYTES = 1 * MiB;
const KEPT_BYTES = 64 * MiB;
/** A line longer than this is handed to `onLine` in pieces: output without newlines is not held whole. */
const LONGEST_LINE = 64 * 1024;

/** A command that failed: the argv, the exit code and the tail of its output travel with it. */
export class CommandError extends LabError {
  constructor(readonly result: RunResult, readonly reason: string, readonly timedOut = false) {
    const cut = result.cutBytes ? `[${formatBytes(result.cutBytes)} of output before this not kept]\n` : '';
    super(`command failed (${reason}): ${formatArgv(result.argv)}\n${cut}${tail(result.stdout + result.stderr, TAIL_LINES)}`, EXIT.FAILED);
  }

  /** Why it failed, without the argv (in `result`). */
  override get summary(): string {
    return `command failed (${this.reason})`;
  }
}

export function formatArgv(argv: readonly string[]): string {
  return argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`)).join(' ');
}

export function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

export function formatBytes(bytes: number): string {
  return bytes >= MiB ? `${(bytes / MiB).toFixed(1)} MiB` : bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${bytes} bytes`;
}

/** A stream's output without the lines that match: complete lines are passed on, the rest held until its end comes. */
class LineFilter {
  private rest: Buffer = Buffer.alloc(0);
  /** The same pattern over a whole chunk: most chunks have no such line, and pass as they came. */
  private readonly anywhere: RegExp;

  constructor(private readonly drop: RegExp) {
    this.anywhere = new RegExp(drop.source, drop.flags.includes('m') ? drop.flags : `${drop.flags}m`);
  }

  push(chunk: Buffer): Buffer {
    const all = this.rest.length ? Buffer.concat([this.rest, chunk]) : chunk;
    const end = all.lastIndexOf(0x0a) + 1;
    // A line this long is no notice: passed on rather than held (memory stays bounded).
    if (all.length - end > LONGEST_HELD_LINE) {
      this.rest = Buffer.alloc(0);
      return this.kept(all);
    }
    this.rest = all.subarray(end);
    return this.kept(all.subarray(0, end));
  }

  /** What was held back: the last line, without its newline. */
  flush(): Buffer {
    const last = this.rest;
    this.rest = Buffer.alloc(0);
    return this.kept(last);
  }

  private kept(lines: Buffer): Buffer {
    if (lines.length === 0) return lines;
    const text = lines.toString('utf8');
    if (!this.anywhere.test(text)) return lines;
    return Buffer.from(text.split(/(?<=\n)/).filter((line) => !this.drop.test(line)).join(''), 'utf8');
  }
}

const LONGEST_HELD_LINE = 64 * 1024;

/** The last `limit` bytes of a stream, held in the chunks they came in: memory stays bounded whatever the command prints. */
class OutputTail {
  private readonly chunks: Buffer[] = [];
  private held = 0;
  private dropped = 0;

  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.held += chunk.length;
    while (this.held - this.chunks[0]!.length >= this.limit) {
      const first = this.chunks.shift()!;
      this.held -= first.length;
      this.dropped += first.length;
    }
  }

  /** Bytes not in `text()`: the start of the stream. */
  get cut(): number {
    return this.dropped + Math.max(0, this.held - this.limit);
  }

  text(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.limit)).toString('utf8');
  }
}

/** Appends to a log file until it holds `limit` bytes, then counts what it drops. */
class CappedLog {
  private room: number;
  dropped = 0;

  constructor(readonly file: string, limit: number) {
    this.room = limit - (existsSync(file) ? statSync(file).size : 0);
  }

  write(data: string | Buffer): void {
    const length = Buffer.byteLength(data);
    if (length <= this.room) {
      appendFileSync(this.file, data);
      this.room -= length;
      return;
    }
    if (this.room > 0) appendFileSync(this.file, Buffer.from(data).subarray(0, this.room));
    this.dropped += length - Math.max(0, this.room);
    this.room = 0;
  }

  /** Always written, past the limit: what the log ends with. */
  close(line: string): void {
    const dropped = this.dropped > 0 ? `\n[log limit reached: ${formatBytes(this.dropped)} of this command's output dropped]` : '';
    appendFileSync(this.file, `${dropped}${line}`);
  }
}

let setprivFound: string | undefined | null = null;

/** util-linux's setpriv, where it is. */
function setpriv(): string | undefined {
  if (setprivFound === null) setprivFound = ['/usr/bin/setpriv', '/bin/setpriv', '/usr/sbin/setpriv'].find((f) => existsSync(f));
  return setprivFound;
}

/** `setpriv --pdeathsig KILL` before the command, where util-linux's setpriv is there. */
function withParentDeathSignal(argv: string[]): string[] {
  const found = setpriv();
  return found ? [found, '--pdeathsig', 'KILL', ...argv] : argv;
}

/**
 * What a helper that keeps few capabilities needs to reach its files under a user's home directory
 * (a lab's repository, reports or disk image in a 0700 /home/<user>): it can then read anywhere,
 * and still write only root's files.
 */
export const REACH_ANY_PATH = 'dac_read_search';

/**
 * `argv` as root with only `capabilities` (setpriv's names: net_raw, net_admin, ...): every other one
 * leaves its inheritable and bounding sets, so that its permitted set (for root, the two together)
 * holds these alone, and no_new_privs keeps a setuid binary from bringing any back. Its uid stays 0:
 * what it opens it opens as root, in directories only root may enter.
 */
export function withCapabilities(capabilities: readonly string[], argv: readonly string[]): string[] {
  const found = setpriv();
  if (!found) throw new HostError(`setpriv is missing: lab runs ${argv[0]} through it, with only the capabilities it needs`, 'apt-get install util-linux');
  const set = ['-all', ...capabilities.map((c) => `+${c}`)].join(',');
  return [found, `--inh-caps=${set}`, `--bounding-set=${set}`, '--no-new-privs', '--', ...argv];
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
  const log = options.logFile ? new CappedLog(options.logFile, options.logLimitBytes ?? DEFAULT_LOG_LIMIT_BYTES) : undefined;
  log?.write(`$ ${formatArgv(argv)}\n`);
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
  const keep = options.keepBytes ?? (log ? KEPT_WITH_LOG_BYTES : KEPT_BYTES);
  const stdout = new OutputTail(keep);
  const stderr = new OutputTail(keep);
  const pending = ['', ''];
  const filters = options.dropLines ? [new LineFilter(options.dropLines), new LineFilter(options.dropLines)] : undefined;
  const onData = (into: OutputTail, index: number) => (raw: Buffer) => deliver(into, index, filters ? filters[index]!.push(raw) : raw);
  const deliver = (into: OutputTail, index: number, chunk: Buffer) => {
    if (chunk.length === 0) return;
    into.push(chunk);
    log?.write(chunk);
    if (!options.onLine) return;
    const lines = (pending[index] + chunk.toString('utf8')).split('\n');
    pending[index] = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) options.onLine(line);
    if (pending[index]!.length > LONGEST_LINE) options.onLine(pending[index]!), (pending[index] = '');
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
  if (filters) for (const [index, into] of [stdout, stderr].entries()) deliver(into, index, filters[index]!.flush());

  for (const [i, rest] of pending.entries()) if (rest.trim()) options.onLine?.(rest), (pending[i] = '');
  const result: RunResult = {
    argv,
    exitCode: outcome.code ?? -1,
    stdout: stdout.text(),
    stderr: stderr.text(),
    durationMs: Date.now() - started,
  };
  if (stdout.cut + stderr.cut > 0) result.cutBytes = stdout.cut + stderr.cut;
  log?.close(`\n[exit ${result.exitCode}, ${result.durationMs} ms]\n`);
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

/**
 * `spawnDetached` for a process that serves sockets made where it cannot make them (listening in
 * another network namespace): once it says 'waiting' (messages before it listens would be lost),
 * each is handed to it over an IPC channel (`{ server: index }` with the socket), which is closed
 * once it answers 'ready'. Returns its pid; past `within` it is killed and this fails.
 */
export async function spawnDetachedWithServers(argv: readonly string[], logFile: string, servers: readonly Server[], within: number): Promise<number> {
  const [file, ...args] = argv;
  if (!file) throw new TypeError('spawnDetachedWithServers: empty argv');
  appendFileSync(logFile, `$ ${formatArgv(argv)}\n`);
  const out = openSync(logFile, 'a');
  let ready = false;
  let ended: string | undefined;
  const child = spawn(file, args, { detached: true, stdio: ['ignore', out, out, 'ipc'] });
  closeSync(out);
  try {
    child.on('message', (message) => {
      if (message === 'waiting') for (const [index, server] of servers.entries()) child.send({ server: index }, server);
      ready ||= message === 'ready';
    });
    child.on('exit', (code, signal) => (ended = `exited ${code ?? signal}`));
    child.on('error', (error) => (ended = error.message));
    await poll(`${formatArgv(argv)} to take its sockets`, () => {
      if (ended) throw new InfraError(`${formatArgv(argv)} ${ended} before it served: see ${logFile}`);
      return ready;
    }, { within, every: FAST });
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  child.disconnect();
  child.unref();
  return child.pid!;
}
