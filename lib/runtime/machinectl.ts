import { existsSync, lstatSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { HostError, InfraError } from '../errors.js';
import { run, type RunOptions, type RunResult } from '../exec.js';
import { findProcesses, killByEnvironment } from '../host/procs.js';
import type { Tool } from '../host/prereq.js';
import { isAlive, refOf } from '../state/process.js';
import type { LabState, ProcessRef } from '../state/state.js';
import { holdsWithin, NORMAL, poll } from '../wait.js';
import { type Bind, bindSpec } from './nspawn-process.js';
import { awaitBoot, execTag, MACHINE_PATH, type MachineHandle, type Readiness, type Runtime } from './runtime.js';
import { type ExpectedInterface, unconfiguredOf } from './routes.js';

const STOP_WITHIN_MS = 30_000;

export interface MachinectlOptions {
  bridge: string;
  binds(machine: string): readonly Bind[];
  /** The lab's machines: their files and processes are what the runtime leaves on the host. */
  machines: readonly string[];
  nspawnName(machine: string): string;
  /** Where machined looks for machine images. */
  imagesDir?: string;
  /** Where systemd-nspawn@.service reads per-machine settings. */
  nspawnDir?: string;
}

/** The settings of one machine, as a .nspawn file for systemd-nspawn@.service (the seeds' way). */
export function nspawnFile(bridge: string, binds: readonly Bind[] = []): string {
  return [
    '# Written by lab at every start (machinectl remove deletes it; nothing is lost).',
    '[Exec]',
    'Boot=yes',
    'PrivateUsers=no',
    'ResolvConf=off',
    'Timezone=off',
    'LinkJournal=no',
    '',
    '[Network]',
    `Bridge=${bridge}`,
    '',
    ...(binds.length ? ['[Files]', ...binds.map((b) => `${b.readonly ? 'BindReadOnly' : 'Bind'}=${bindSpec(b)}`), ''] : []),
  ].join('\n');
}

/**
 * Machines as machined machines, on a systemd host: a .nspawn file and an image link per
 * machine, `machinectl start/poweroff/terminate`, commands through `systemd-run -M`, and
 * readiness through `systemctl -M ... is-system-running --wait`.
 */
export class MachinectlRuntime implements Runtime {
  private readonly imagesDir: string;
  private readonly nspawnDir: string;

  constructor(private readonly options: MachinectlOptions) {
    this.imagesDir = options.imagesDir ?? '/var/lib/machines';
    this.nspawnDir = options.nspawnDir ?? '/etc/systemd/nspawn';
  }

  tools(): Tool[] {
    return [
      { command: 'machinectl', debianPackage: 'systemd-container', why: 'starts and stops the machines (machined)' },
      { command: 'systemd-run', debianPackage: 'systemd', why: 'runs commands inside machines' },
      { command: 'systemctl', debianPackage: 'systemd', why: 'asks machines whether they booted' },
    ];
  }

  describe(): string {
    return 'machinectl (machined, systemd-nspawn@ units)';
  }

  /** The machines' nspawn processes, found by their machine names (systemd-nspawn@ gives no --directory). */
  private processes(): { machine: string; process: ProcessRef }[] {
    const byName = new Map(this.options.machines.map((m) => [`--machine=${this.options.nspawnName(m)}`, m]));
    return findProcesses((argv) => Boolean(argv[0]?.endsWith('systemd-nspawn')) && argv.some((a) => byName.has(a))).map(({ process, argv }) => ({
      machine: byName.get(argv.find((a) => byName.has(a))!)!,
      process,
    }));
  }

  async stopUnrecorded(state: LabState): Promise<string[]> {
    // The state records a machinectl machine by its leader, not its nspawn: a machine is recorded when that leader lives.
    const unrecorded = this.processes().filter(({ machine }) => !isAlive(state.machines[machine]?.process));
    await Promise.all(unrecorded.map(({ machine, process }) => this.stop({ name: machine, process }, { hard: true })));
    return unrecorded.map((u) => u.machine);
  }

  async leftovers(): Promise<string[]> {
    const found = this.processes().map(({ machine, process }) => `machine ${machine} running (pid ${process.pid})`);
    for (const machine of this.options.machines) for (const file of this.files(machine)) if (existsOrLink(file)) found.push(`machinectl file ${file}`);
    return found;
  }

  async destroy(state: LabState): Promise<void> {
    await Promise.all(this.options.machines.map(async (machine) => {
      const process = state.machines[machine]?.process ?? this.processes().find((p) => p.machine === machine)?.process;
      if (process) await this.stop({ name: machine, process }, { hard: true });
      delete state.machines[machine]?.process;
      for (const file of this.files(machine)) rmSync(file, { force: true });
    }));
  }

  /** The image link and .nspawn file of a machine: what `lab destroy` removes. */
  private files(machine: string): string[] {
    const name = this.options.nspawnName(machine);
    return [path.join(this.imagesDir, name), path.join(this.nspawnDir, `${name}.nspawn`)];
  }

  async start(machine: string, root: string): Promise<ProcessRef> {
    const name = this.options.nspawnName(machine);
    const [image, settings] = this.files(machine);
    mkdirSync(this.nspawnDir, { recursive: true });
    writeFileSync(settings, nspawnFile(this.options.bridge, this.options.binds(machine)));
    mkdirSync(this.imagesDir, { recursive: true });
    if (existsOrLink(image)) rmSync(image, { force: true });
    symlinkSync(root, image);
    await run(['machinectl', 'start', name]);
    return poll(`the leader process of ${name} (machinectl start)`, async () => {
      const leader = await this.leader(name);
      return leader ? refOf(leader) : undefined;
    }, { within: 30_000, every: NORMAL });
  }

  private async leader(name: string): Promise<number | undefined> {
    const result = await run(['machinectl', 'show', name, '--property=Leader', '--value'], { allowFailure: true });
    const pid = Number(result.stdout.trim());
    return result.exitCode === 0 && pid > 0 ? pid : undefined;
  }

  waitReady(handle: MachineHandle, timeoutMs: number): Promise<Readiness> {
    const name = this.options.nspawnName(handle.name);
    const died = () => (isAlive(handle.process) ? undefined : new InfraError(`${handle.name} stopped while booting (journalctl -u systemd-nspawn@${name})`));
    const consoleTail = () => `(journalctl -u systemd-nspawn@${name} on the host)`;
    return awaitBoot(handle.name, ([command, ...args], timeout) => run([command, '-M', name, ...args], { allowFailure: true, timeout }), died, timeoutMs, consoleTail);
  }

  exec(handle: MachineHandle, argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const name = this.options.nspawnName(handle.name);
    // The unit's processes carry the tag: on timeout they are ended from the host, wherever they went.
    const tag = execTag();
    return run(
      ['systemd-run', `--machine=${name}`, '--quiet', '--pipe', '--wait', '--collect', '--service-type=exec', `--setenv=PATH=${MACHINE_PATH}`, '--setenv=LANG=C.UTF-8', `--setenv=${tag}`, '--', ...argv],
      { ...options, endAll: async () => void killByEnvironment(tag) },
    );
  }

  leaderPid(handle: MachineHandle): Promise<number | undefined> {
    return this.leader(this.options.nspawnName(handle.name));
  }

  /** Read from the host, in the machine's routing table: no command in a machine still booting. */
  async unconfiguredInterfaces(handle: MachineHandle, expected: readonly ExpectedInterface[]): Promise<string[] | undefined> {
    return unconfiguredOf(await this.leaderPid(handle), expected);
  }

  async shell(handle: MachineHandle): Promise<number> {
    const result = await run(['machinectl', 'shell', this.options.nspawnName(handle.name)], { inherit: true, allowFailure: true, timeout: 7 * 24 * 3600_000 });
    return result.exitCode;
  }

  async stop(handle: MachineHandle, options: { hard: boolean }): Promise<void> {
    if (!isAlive(handle.process)) return;
    const name = this.options.nspawnName(handle.name);
    await run(['machinectl', options.hard ? 'terminate' : 'poweroff', name], { allowFailure: true });
    const stopped = async () => !isAlive(handle.process) && !(await this.leader(name));
    if (await holdsWithin(stopped, { within: STOP_WITHIN_MS, every: NORMAL })) return;
    if (options.hard) throw new HostError(`${handle.name} did not stop (machinectl terminate ${name})`);
    return this.stop(handle, { hard: true });
  }
}

function existsOrLink(file: string): boolean {
  return existsSync(file) || isSymlink(file);
}

function isSymlink(file: string): boolean {
  try {
    return lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}
