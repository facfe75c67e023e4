import { CommandError, formatArgv, type RunResult, tail } from './exec.js';
import { AssertionFailure } from './errors.js';
import { poll, SLOW } from './wait.js';

/** A shell command line run by the machine's /bin/sh, or an argv. */
export type Command = string | readonly string[];

/** Runs a command inside a running machine; never throws for a non-zero exit. */
export type MachineExecutor = (argv: readonly string[], options: { timeout: number; input?: string }) => Promise<RunResult>;

const DEFAULT_COMMAND_TIMEOUT_MS = 60_000;
const DEFAULT_WAIT_MS = 30_000;

function argvOf(command: Command): readonly string[] {
  return typeof command === 'string' ? ['/bin/sh', '-c', command] : command;
}

/** The command as the test wrote it (not the runtime's wrapping), its exit code and its output. */
function describe(command: Command, result: RunResult): string {
  const output = tail(`${result.stdout}${result.stderr}`, 25);
  const shown = typeof command === 'string' ? command : formatArgv(command);
  return `$ ${shown}\nexit code ${result.exitCode}${output ? `\n${output}` : ''}`;
}

/**
 * The verbs of a machine under test (after the NixOS test driver): all built on `execute`,
 * every wait a retry of a real condition with a deadline.
 */
export class Machine {
  constructor(
    readonly name: string,
    private readonly executor: MachineExecutor,
  ) {}

  /** Runs the command; a machine that does not run rejects (never throws at the call). */
  async execute(command: Command, options: { timeout?: number; input?: string } = {}): Promise<RunResult> {
    return this.executor(argvOf(command), { timeout: options.timeout ?? DEFAULT_COMMAND_TIMEOUT_MS, input: options.input });
  }

  /**
   * Like `execute`, but a command that outlives its timeout is the test's verdict (the command did
   * not do what was asked in time), not a broken lab: it comes back as a failed result.
   */
  private async attempt(command: Command, options: { timeout?: number; input?: string }): Promise<RunResult & { timedOut?: string }> {
    try {
      return await this.execute(command, options);
    } catch (error) {
      if (!(error instanceof CommandError && error.timedOut)) throw error;
      return { ...error.result, timedOut: error.reason };
    }
  }

  /** Runs the command, fails unless it exits 0; returns its standard output. */
  async succeed(command: Command, options: { timeout?: number; input?: string } = {}): Promise<string> {
    const result = await this.attempt(command, options);
    if (result.timedOut) throw new AssertionFailure(`${this.name}: command should have succeeded but ${result.timedOut}\n${describe(command, result)}`, result);
    if (result.exitCode !== 0) throw new AssertionFailure(`${this.name}: command should have succeeded\n${describe(command, result)}`, result);
    return result.stdout;
  }

  /** Runs the command, fails if it exits 0; returns its output. */
  async fail(command: Command, options: { timeout?: number } = {}): Promise<string> {
    const result = await this.attempt(command, options);
    if (result.timedOut) throw new AssertionFailure(`${this.name}: command should have failed but ${result.timedOut}\n${describe(command, result)}`, result);
    if (result.exitCode === 0) throw new AssertionFailure(`${this.name}: command should have failed\n${describe(command, result)}`, result);
    return `${result.stdout}${result.stderr}`;
  }

  /** Runs the command until it exits 0 (a try that outlives what is left of the wait counts as a failure); returns its output. */
  async waitUntilSucceeds(command: Command, timeoutMs = DEFAULT_WAIT_MS): Promise<string> {
    return (await this.retry(command, timeoutMs, 'succeed', `command did not succeed within ${timeoutMs} ms`)).stdout;
  }

  /** Runs the command until it exits non-zero (a try that hangs is no failure); returns its output. */
  async waitUntilFails(command: Command, timeoutMs = DEFAULT_WAIT_MS): Promise<string> {
    const failed = await this.retry(command, timeoutMs, 'fail', `command did not fail within ${timeoutMs} ms`);
    return `${failed.stdout}${failed.stderr}`;
  }

  /** Waits until the path exists in the machine (a file, a directory, a socket...). */
  async waitForFile(file: string, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    await this.retry(['test', '-e', file], timeoutMs, 'succeed', `${file} did not appear within ${timeoutMs} ms`);
  }

  /** Tries the command SLOW apart until it succeeds (or fails), each try bounded by what is left of the wait. */
  private async retry(command: Command, timeoutMs: number, until: 'succeed' | 'fail', notInTime: string): Promise<RunResult> {
    const deadline = Date.now() + timeoutMs;
    let last!: RunResult & { timedOut?: string };
    return poll(`${this.name} to ${until} in a command`, async () => {
      last = await this.attempt(command, { timeout: Math.max(1000, deadline - Date.now()) });
      if (last.timedOut) return undefined;
      return (last.exitCode === 0) === (until === 'succeed') ? last : undefined;
    }, {
      within: timeoutMs,
      every: SLOW,
      onTimeout: () => new AssertionFailure(`${this.name}: ${notInTime}\n${describe(command, last)}`, last),
    });
  }

  /** Waits until the unit is active; fails at once, with its journal, when the unit has failed. */
  async waitForUnit(unit: string, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    let state = '';
    const notActive = async () => {
      const journal = await this.execute(['journalctl', '--no-pager', '-n', '30', '-u', unit]);
      return new AssertionFailure(`${this.name}: unit ${unit} is ${state}${state === 'failed' ? '' : ` after ${timeoutMs} ms`}\n${tail(journal.stdout, 30)}`);
    };
    await poll(`${this.name}: unit ${unit} to be active`, async () => {
      state = (await this.execute(['systemctl', 'is-active', unit])).stdout.trim();
      if (state === 'failed') throw await notActive();
      return state === 'active';
    }, { within: timeoutMs, every: SLOW, onTimeout: notActive });
  }

  /** Waits until something listens on the TCP port (connecting from inside the machine). */
  async waitForOpenPort(port: number, address = '127.0.0.1', timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    await this.waitUntilSucceeds(tcpConnect(address, port), timeoutMs);
  }

  /** Waits until nothing listens on the TCP port any more: a connection from inside the machine is refused. */
  async waitForClosedPort(port: number, address = '127.0.0.1', timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    await this.waitUntilFails(tcpConnect(address, port), timeoutMs);
  }
}

/** A TCP connection from inside the machine (bash's /dev/tcp: no tool needed); fails when refused. */
function tcpConnect(address: string, port: number): readonly string[] {
  return ['bash', '-c', `exec 3<>/dev/tcp/${address}/${port}`];
}
