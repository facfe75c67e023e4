/**
 * The scenario API: what a file under scenarios/ imports. `lab test` runs scenarios with
 * vitest; this module opens the lab it names, gives machines with assertion verbs, brings
 * machines to a declared stage and puts them back afterwards.
 */
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { Parser } from 'tap-parser';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { openLab } from '../engine/lab.js';
import type { Lab } from '../engine/lab-types.js';
import { machineExecutor } from '../engine/machines.js';
import { restore } from '../engine/restore.js';
import { up } from '../engine/up.js';
import { type CopyReport, copyFromMachine, copyToMachine } from '../engine/copy.js';
import { power } from '../engine/lifecycle.js';
import { AssertionFailure, InfraError, TimeoutError, UsageError } from '../errors.js';
import { run, type RunResult, tail } from '../exec.js';
import type { IdempotenceReport } from '../engine/idempotence.js';
import { inNetns } from '../network/network.js';
import { consoleTail, sendConsole, waitForConsoleText } from '../vm/console.js';
import { checkImpairment, hostSideLinks, type Impairment, type LinkFaults } from '../network/faults.js';
import { Machine } from '../machine-verbs.js';
import { readState } from '../state/state.js';
import { delay, SLOW } from '../wait.js';
import { captureDirOf, ScenarioCapture } from './capture.js';
import { ENV_CAPTURE_DIR, ENV_CONFIG, ENV_DEBUG_DIR, ENV_GROUP, ENV_NAME, ENV_SCENARIOS_DIR } from './environment.js';
import { PAUSE_LIMIT_MS, pauseAtFailure } from './pause.js';
import { scenarioName } from '../report/collector.js';

declare module 'vitest' {
  interface TaskMeta {
    /** Journal tails of the machines a failed test used, for the report. */
    labJournals?: Record<string, string>;
  }
}

export interface CurlOptions {
  /** `host:port:address`, as curl's --resolve. */
  resolve?: string;
  insecure?: boolean;
  /** Fail unless the HTTP status is this one. */
  expectStatus?: number;
  timeoutS?: number;
}

export interface CurlReply {
  status: number;
  body: string;
  redirectUrl: string;
  remoteIp: string;
}

/** Links the running test cut or impaired (host side), with the lab's faults: its own undone after it, pass or fail. */
const faulted = new Map<string, LinkFaults>();

/** Whether a test of this scenario file failed: its packet captures are kept then. */
let anyTestFailed = false;

/** Machines used by the running test: their journals go into the report when it fails. */
const usedByTest = new Set<string>();
const JOURNAL_LINES = 40;

/**
 * Says whether machines may be changed (restored, rebooted, crashed), throwing when not: scenarios
 * of the exclusive group may, since they run alone; lab repl may, its user being at the lab.
 */
export type ChangeGuard = (what: string) => void;

/** A machine of the lab under test: the Machine verbs plus network checks, files and power. */
export class LabMachine extends Machine {
  constructor(
    name: string,
    private readonly lab: Lab,
    private readonly mayChange: ChangeGuard = assertExclusive,
  ) {
    // The process is read at every call: a restore in this or another scenario restarts machines.
    const run = machineExecutor(lab, name, () => readState(lab.dirs.stateFile).machines[name]?.process);
    super(name, (argv, options) => {
      usedByTest.add(name);
      return run(argv, options);
    });
  }

  /** Pings another machine by name (resolved through the zone's DNS). */
  async ping(other: string, count = 1): Promise<void> {
    const target = other.includes('.') ? other : `${other}.${this.lab.config.zone.domain}`;
    await this.succeed(['ping', '-c', String(count), '-W', '2', target]);
  }

  /** The first address the machine's resolver gives for a name. */
  async resolve(name: string): Promise<string> {
    const result = await this.execute(['getent', 'ahostsv4', name]);
    const address = result.stdout.split(/\s+/)[0];
    if (result.exitCode !== 0 || !address) throw new AssertionFailure(`${this.name}: cannot resolve ${name} (getent exit code ${result.exitCode})`, result);
    return address;
  }

  /** An HTTP(S) request from inside the machine. */
  async curl(url: string, options: CurlOptions = {}): Promise<CurlReply> {
    const marker = '\n--lab-curl--\n';
    const argv = ['curl', '-sS', '--max-time', String(options.timeoutS ?? 10), '-w', `${marker}%{http_code} %{remote_ip} %{redirect_url}`];
    if (options.insecure) argv.push('-k');
    if (options.resolve) argv.push('--resolve', options.resolve);
    argv.push(url);
    const result = await this.execute(argv);
    if (result.exitCode !== 0) {
      throw new AssertionFailure(`${this.name}: curl ${url} failed (exit code ${result.exitCode})\n${tail(result.stderr, 10)}`, result);
    }
    const at = result.stdout.lastIndexOf(marker);
    const [status, remoteIp, redirectUrl = ''] = result.stdout.slice(at + marker.length).split(' ');
    const reply = { status: Number(status), body: result.stdout.slice(0, at), remoteIp, redirectUrl };
    if (options.expectStatus !== undefined && reply.status !== options.expectStatus) {
      throw new AssertionFailure(`${this.name}: ${url} answered ${reply.status}, expected ${options.expectStatus}\n${tail(reply.body, 10)}`, result);
    }
    return reply;
  }

  /**
   * The host side of the machine's links, on one network or all of them: found from the machine's
   * own ends (their peer's index), in the namespace the lab's bridges are in.
   */
  private async links(network?: string): Promise<string[]> {
    const interfaces = this.lab.topology.machines.find((m) => m.name === this.name)!.interfaces.filter((i) => !network || i.network === network);
    if (interfaces.length === 0) {
      const networks = this.lab.topology.machines.find((m) => m.name === this.name)!.interfaces.map((i) => i.network);
      throw new UsageError(`${this.name} has no interface on network '${network}' (its networks: ${networks.join(', ')})`);
    }
    const peers = await this.succeed(['cat', ...interfaces.map((i) => `/sys/class/net/${i.name}/iflink`)]);
    const listed = await run([...this.lab.network.netnsPrefix, 'ip', '-o', 'link', 'show']);
    const links = hostSideLinks(peers.trim().split('\n').map(Number), listed.stdout);
    if (links.some((l) => l === undefined)) throw new InfraError(`${this.name}: the host side of its links was not found`);
    return links as string[];
  }

  /** Cuts the machine's links (all, or the one on `network`): nothing goes in or out, as with a cable pulled. */
  async block(network?: string): Promise<void> {
    for (const link of await this.links(network)) {
      faulted.set(link, this.lab.faults);
      await this.lab.faults.block(link);
    }
  }

  async unblock(network?: string): Promise<void> {
    for (const link of await this.links(network)) await this.lab.faults.unblock(link);
  }

  /** Delay, jitter, loss or rate on the way to the machine (netem, or its stand-ins), until clearImpairment or the test's end. */
  async impair(impairment: Impairment, network?: string): Promise<void> {
    checkImpairment(impairment);
    for (const link of await this.links(network)) {
      faulted.set(link, this.lab.faults);
      await this.lab.faults.impair(link, impairment, this.name);
    }
  }

  async clearImpairment(network?: string): Promise<void> {
    for (const link of await this.links(network)) await this.lab.faults.clearImpairment(link);
  }

  /**
   * Copies a file or a whole tree out of the machine (a path inside it, links resolved as the
   * machine would) to `localPath` on the host, or into it when it is a directory. A `..` or a link
   * that leads out of the machine's root is refused.
   */
  async copyFromMachine(file: string, localPath: string): Promise<CopyReport> {
    usedByTest.add(this.name);
    return copyFromMachine(this.lab, this.name, file, localPath);
  }

  /** Copies a host file or tree into the machine: to `file`, or into it when it is a directory there. */
  async copyToMachine(localPath: string, file: string): Promise<CopyReport> {
    usedByTest.add(this.name);
    return copyToMachine(this.lab, localPath, this.name, file);
  }

  /** Stops the machine in order and boots it again, until it is up (exclusive scenarios only). */
  async reboot(): Promise<void> {
    await this.power('reboot');
  }

  /**
   * A power cut (exclusive scenarios only): the machine's init is killed at once, and its root is
   * left as it was; `start()` boots it from there.
   */
  async crash(): Promise<void> {
    await this.power('crash');
  }

  /** Boots a stopped (or crashed) machine from its root, until it is up; a running one is left alone. */
  async start(): Promise<void> {
    await this.power('start');
  }

  private async power(action: 'reboot' | 'crash' | 'start'): Promise<void> {
    this.mayChange(`${this.name}.${action}()`);
    usedByTest.add(this.name);
    await power(this.lab, this.name, action, { waitForLock: true });
  }

  /** A container's journal tail; a vm's console tail (it has no journal lab can read). */
  async journal(lines = JOURNAL_LINES): Promise<string> {
    const console = this.lab.backendOf(this.name).console?.(this.lab, this.name);
    if (console) return consoleTail(console.log, lines);
    return (await this.execute(['journalctl', '--no-pager', '-n', String(lines)])).stdout;
  }

  /**
   * A vm: waits until its serial console, since it last booted, shows a line matching `pattern`
   * (the NixOS driver's wait_for_console_text); returns that line. At the deadline it fails with
   * the console's tail, and the vm is left running to look at (lab console).
   */
  async waitForConsoleText(pattern: RegExp | string, timeoutMs = 60_000): Promise<string> {
    const { log } = this.console('waitForConsoleText');
    usedByTest.add(this.name);
    try {
      return await waitForConsoleText(log, pattern, timeoutMs, this.name);
    } catch (error) {
      // The text not coming in time is the test's verdict, not a broken lab.
      if (error instanceof TimeoutError) throw new AssertionFailure(error.message);
      throw error;
    }
  }

  /** A vm: types `text` on its serial console (add '\n' to press Enter). */
  async sendConsole(text: string): Promise<void> {
    const { socket } = this.console('sendConsole');
    usedByTest.add(this.name);
    await sendConsole(socket, text);
  }

  /** The machine's serial console, which `verb` needs: a container has none. */
  private console(verb: string): { socket: string; log: string } {
    const backend = this.lab.backendOf(this.name);
    const console = backend.console?.(this.lab, this.name);
    if (!console) throw new UsageError(`${verb}: ${this.name} is ${backend.what} (use execute, succeed)`);
    return console;
  }
}

export interface TapPoint {
  id: number;
  ok: boolean;
  name: string;
  skip: boolean;
  todo: boolean;
  diag: unknown;
}

export interface ScenarioOptions {
  /** The stage the scenario needs (`<stage>` or `<machine>@<stage>`): restored before, undone after. */
  restore?: string;
}

export interface DuringOptions {
  /** Milliseconds between two checks of the invariant (default 100). */
  every?: number;
}

export class ScenarioLab {
  constructor(
    readonly lab: Lab,
    private readonly mayChange: ChangeGuard = assertExclusive,
  ) {}

  get machineNames(): string[] {
    return this.lab.config.machines.map((m) => m.name);
  }

  get domain(): string {
    return this.lab.config.zone.domain;
  }

  /**
   * Where NAT can be checked: the sandbox's simulated internet, or in host mode the server the
   * config names (network.internet); undefined when there is none.
   */
  get internet(): { address: string; uplinkAddress: string } | undefined {
    return this.lab.network.internet ?? this.lab.config.network.internet;
  }

  machine(name: string): LabMachine {
    if (!this.machineNames.includes(name)) throw new UsageError(`unknown machine '${name}' (machines: ${this.machineNames.join(', ')})`);
    return new LabMachine(name, this.lab, this.mayChange);
  }

  /**
   * Runs `body` while an invariant holds (the NixOS driver's polling_condition): `check` is run
   * before the body, every `every` ms while it runs, and once it ended. A check that throws or
   * returns false fails this at once, with what the check said; the body is then left to end on
   * its own, its outcome unheard. Otherwise the body's result (or error) is this one's.
   */
  async during<T>(check: () => unknown, body: () => T | Promise<T>, options: DuringOptions = {}): Promise<T> {
    const started = Date.now();
    const broken = async (when: string): Promise<AssertionFailure | undefined> => {
      try {
        if ((await check()) !== false) return undefined;
        return new AssertionFailure(`during: the invariant ${when}: the check returned false`);
      } catch (error) {
        return new AssertionFailure(`during: the invariant ${when}: ${(error as Error).message}`);
      }
    };
    const before = await broken('did not hold before the body began');
    if (before) throw before;
    let ended = false;
    const running = Promise.resolve().then(body).finally(() => {
      ended = true;
    });
    const settled = running.then(() => undefined, () => undefined);
    const watch = (async () => {
      for (;;) {
        await Promise.race([delay(options.every ?? SLOW), settled]);
        if (ended) return;
        const failure = await broken(`broke ${Date.now() - started} ms into the body`);
        if (failure) throw failure;
      }
    })();
    await Promise.race([settled, watch]); // a broken invariant throws here, at once
    await watch; // the check that was running as the body ended
    const result = await running;
    const after = await broken('did not hold when the body ended');
    if (after) throw after;
    return result;
  }

  /**
   * Runs a command on the simulated internet (sandbox mode): the outside world, which reaches the
   * lab through its NAT and its published ports (at `publishedAddress`).
   */
  async fromInternet(argv: readonly string[], options: { timeout?: number } = {}): Promise<RunResult> {
    if (this.lab.network.mode !== 'sandbox') throw new UsageError('fromInternet: only in sandbox mode (host mode has no simulated internet)');
    return run([...inNetns(this.lab.names.wanNetns), ...argv], { allowFailure: true, timeout: options.timeout ?? 30_000 });
  }

  /** Where the outside reaches published ports: the lab's uplink address in sandbox mode. */
  get publishedAddress(): string | undefined {
    return this.lab.network.internet?.uplinkAddress;
  }

  /** lab up --idempotence, from a scenario (exclusive ones only): every stage applied again, what it changed. */
  async checkIdempotence(machines: readonly string[] = []): Promise<IdempotenceReport> {
    this.mayChange('checkIdempotence');
    const { checkIdempotence } = await import('../engine/idempotence.js');
    return checkIdempotence(this.lab, { machines });
  }

  /** Puts machines back to a stage or a checkpoint; only scenarios of the exclusive group may. */
  async restore(ref: string): Promise<void> {
    this.mayChange(`restore ${ref}`);
    await restore(this.lab, ref, { waitForLock: true });
  }

  /** Keeps the whole lab as it is now, as lab checkpoint save does (its machines frozen a moment); restore(name) brings it back. */
  async checkpoint(name: string): Promise<void> {
    this.mayChange(`checkpoint ${name}`);
    const { saveCheckpoint } = await import('../engine/checkpoints.js');
    await saveCheckpoint(this.lab, name);
  }

  /** Brings the whole lab back to its last stages. */
  async up(): Promise<void> {
    this.mayChange('lab up');
    await up(this.lab, { waitForLock: true });
  }

  /**
   * Runs a TAP check script (a fixture) inside a machine and returns its test points; see
   * `tapChecks` to turn each point into a test of its own.
   */
  async tap(machine: string, fixture: string): Promise<{ points: TapPoint[]; output: string; exitCode: number }> {
    const script = readFileSync(path.join(this.lab.loaded.fixturesDir, fixture), 'utf8');
    const result = await this.machine(machine).execute(['sh', '-s'], { input: script });
    const points: TapPoint[] = [];
    for (const [type, data] of Parser.parse(result.stdout) as [string, TapPoint][]) {
      if (type === 'assert') points.push({ id: data.id, ok: data.ok, name: data.name, skip: Boolean(data.skip), todo: Boolean(data.todo), diag: data.diag });
    }
    return { points, output: result.stdout, exitCode: result.exitCode };
  }
}

function assertExclusive(what: string): void {
  if (process.env[ENV_GROUP] !== 'exclusive') {
    throw new UsageError(`${what}: only scenarios under scenarios/exclusive/ may change machines (they run alone, after the others)`);
  }
}

/**
 * Opens the lab `lab test` runs against. With `restore`, the machines are brought to that
 * stage before the scenario's tests and back to their last stage after them.
 */
/**
 * A scenario worker dies with the `lab test` that started it (its IPC channel closes when lab is
 * killed, even by SIGKILL): it stops running commands in machines at once, and what it runs itself
 * dies with it (run() gives every command a parent-death signal). Its link faults are undone by the
 * next lab command (they are claimed by its pid).
 */
if (process.send) process.once('disconnect', () => process.kill(process.pid, 'SIGKILL'));

export async function useLab(options: ScenarioOptions = {}): Promise<ScenarioLab> {
  const lab = await openLab({ file: process.env[ENV_CONFIG] || undefined, name: process.env[ENV_NAME] || undefined });
  const scenario = new ScenarioLab(lab);
  if (options.restore) {
    const ref = options.restore;
    assertExclusive(`restore: '${ref}'`);
    beforeAll(() => scenario.restore(ref));
    afterAll(() => scenario.up());
  }
  afterEach(async () => {
    const links = [...faulted];
    faulted.clear();
    for (const [link, faults] of links) {
      await faults.unblock(link);
      await faults.clearImpairment(link);
    }
  });
  const pauseDir = process.env[ENV_DEBUG_DIR];
  if (pauseDir) {
    // Hooks after a test run last registered first: this one before the cleanup above, with the lab as the test left it.
    afterEach(async ({ task }) => {
      if (task.result?.state !== 'fail') return;
      const error = task.result.errors?.[0]?.message ?? 'failed';
      // A command's outcome that failed the test says so: `<machine>: command should have ...`, then `$ <the command>`.
      const failed = /^([a-z0-9][a-z0-9-]*): command [^\n]*\n\$ (.*)$/m.exec(error);
      const command = failed ? { machine: failed[1]!, line: failed[2]! } : undefined;
      await pauseAtFailure(pauseDir, { scenario: task.file.name, test: task.name, error, machines: [...usedByTest], command });
    }, PAUSE_LIMIT_MS);
  }
  const captureRoot = process.env[ENV_CAPTURE_DIR];
  if (captureRoot) {
    let capture: ScenarioCapture | undefined;
    // vitest gives the suite (here, the scenario's file) as the second argument, after an object to destructure.
    beforeAll(async ({}, suite) => {
      const file = (suite as { file?: { filepath: string } }).file?.filepath ?? (suite as { filepath?: string }).filepath ?? 'scenario';
      capture = new ScenarioCapture(lab, captureDirOf(captureRoot, scenarioName(file, process.env[ENV_SCENARIOS_DIR] ?? path.dirname(file))));
      await capture.start();
    });
    afterAll(async () => capture?.stop(anyTestFailed));
  }
  beforeEach(({ task, onTestFailed }) => {
    usedByTest.clear();
    onTestFailed(async () => {
      anyTestFailed = true;
      const journals: Record<string, string> = {};
      for (const name of usedByTest) journals[name] = await scenario.machine(name).journal().catch((error: Error) => `(no journal: ${error.message})`);
      task.meta.labJournals = journals;
    });
  });
  return scenario;
}

/** Runs a TAP check script in a machine now, and makes each of its points a test. */
export async function tapChecks(scenario: ScenarioLab, machine: string, fixture: string): Promise<void> {
  const { points, output, exitCode } = await scenario.tap(machine, fixture);
  if (points.length === 0) {
    it(`${machine}: ${fixture} runs and reports TAP`, () => {
      throw new AssertionFailure(`${machine}: ${fixture} printed no TAP test point (exit code ${exitCode})\n${tail(output, 20)}`);
    });
  }
  for (const point of points) {
    const title = `${machine}: ${point.id} ${point.name}`;
    if (point.skip || point.todo) it.skip(title, () => undefined);
    else
      it(title, () => {
        if (!point.ok) {
          const diag = point.diag ? `\n${JSON.stringify(point.diag, null, 2)}` : '';
          throw new AssertionFailure(`${machine}: not ok ${point.id} - ${point.name} (${fixture})${diag}`);
        }
      });
  }
}

interface MatcherResult {
  pass: boolean;
  message: () => string;
}

async function unitState(machine: LabMachine, unit: string): Promise<{ enabled: string; active: string }> {
  const enabled = (await machine.execute(['systemctl', 'is-enabled', unit])).stdout.trim();
  const active = (await machine.execute(['systemctl', 'is-active', unit])).stdout.trim();
  return { enabled, active };
}

expect.extend({
  /** SADM's test_service_is_enabled_active. */
  async toHaveServiceEnabledAndActive(machine: LabMachine, unit: string): Promise<MatcherResult> {
    const { enabled, active } = await unitState(machine, unit);
    const pass = enabled === 'enabled' && active === 'active';
    return { pass, message: () => `${machine.name}: ${unit} is ${enabled || 'unknown'} and ${active || 'unknown'}; expected ${pass ? 'not ' : ''}enabled and active` };
  },
  /** The file exists and is not empty. */
  async toHaveFile(machine: LabMachine, file: string): Promise<MatcherResult> {
    const pass = (await machine.execute(['test', '-s', file])).exitCode === 0;
    return { pass, message: () => `${machine.name}: ${file} ${pass ? 'exists and is not empty' : 'is missing or empty'}` };
  },
  /** Something listens on the port (TCP unless told UDP). */
  async toListenOn(machine: LabMachine, port: number, protocol: 'tcp' | 'udp' = 'tcp'): Promise<MatcherResult> {
    const listening = (await machine.execute(['ss', protocol === 'udp' ? '-Hlun' : '-Hltn', `sport = :${port}`])).stdout.trim();
    const pass = listening.length > 0;
    return { pass, message: () => `${machine.name}: ${pass ? 'something listens' : 'nothing listens'} on ${protocol.toUpperCase()} port ${port}` };
  },
});

declare module 'vitest' {
  interface Matchers<T = any> {
    toHaveServiceEnabledAndActive(unit: string): Promise<T>;
    toHaveFile(file: string): Promise<T>;
    toListenOn(port: number, protocol?: 'tcp' | 'udp'): Promise<T>;
  }
}
