import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { HostError, InfraError } from '../errors.js';
import { inCgroups, labCgroupRoots, labCgroups, processesIn, removeCgroupTree } from '../host/cgroups.js';
import { findProcesses, killByEnvironment } from '../host/procs.js';
import type { Tool } from '../host/prereq.js';
import { run, type RunOptions, type RunResult, spawnDetached, tail } from '../exec.js';
import { isAlive, refOf, signalProcess, statFields } from '../state/process.js';
import type { LabState, ProcessRef } from '../state/state.js';
import { FAST, holdsWithin, NORMAL, poll } from '../wait.js';
import { type Bind, bindOptions, type DisklessBoot, disklessInit, disklessOptions, NSPAWN_TOOLS, nspawnArgv, nspawnLeader, stopNspawn } from './nspawn-process.js';
import { awaitBoot, execTag, MACHINE_PATH, type MachineHandle, type Readiness, type Runtime, StartRace, SUPERVISOR } from './runtime.js';
import { type ExpectedInterface, unconfiguredOf } from './routes.js';

/** How long what is left in the lab's cgroups, once its machines are stopped, is given to die of SIGKILL. */
const LEFTOVER_KILL_MS = 1250;

export interface NspawnOptions {
  /** nsenter argv prefix that puts nspawn into the lab's netns (sandbox mode), or empty (host mode). */
  netnsPrefix: readonly string[];
  /** Where the lab's machine roots are: its machine processes are found by it. */
  machinesDir: string;
  /** Names the lab's cgroups. */
  labName: string;
  /** The lab's machines: a running one is told by its nspawn machine name (a diskless one's directory is another machine's). */
  machines: readonly string[];
  /** A machine's interfaces: its name inside, the host side of its veth, the bridge that joins. */
  interfaces(machine: string): { name: string; hostLink: string; bridge: string }[];
  binds(machine: string): readonly Bind[];
  nspawnName(machine: string): string;
  consoleLog(machine: string): string;
}

/**
 * Machines as `systemd-nspawn --boot` processes started directly by the lab (no machined):
 * detached, so they outlive `lab`, and attached to the zone bridge with a veth.
 */
export class NspawnRuntime implements Runtime {
  constructor(private readonly options: NspawnOptions) {}

  tools(): Tool[] {
    return NSPAWN_TOOLS;
  }

  describe(): string {
    return 'nspawn (started by lab, no machined)';
  }

  /** The lab's machine processes, also those its state lost track of (a crash between start and write). */
  private processes(): { machine: string; process: ProcessRef }[] {
    return findBootedMachines(this.options.machinesDir, new Map(this.options.machines.map((m) => [this.options.nspawnName(m), m])));
  }

  async stopUnrecorded(state: LabState): Promise<string[]> {
    const unrecorded = this.processes().filter(({ machine, process }) => state.machines[machine]?.process?.pid !== process.pid);
    await Promise.all(unrecorded.map(({ machine, process }) => this.stop({ name: machine, process }, { hard: true })));
    return unrecorded.map((u) => u.machine);
  }

  async leftovers(): Promise<string[]> {
    const machines = this.processes();
    const found = machines.map(({ machine, process }) => `machine ${machine} running (pid ${process.pid})`);
    const roots = labCgroupRoots(this.options.labName);
    // What outlived its nspawn (a container's init whose nspawn was killed) is still in the lab's cgroups.
    const known = new Set(machines.map((m) => m.process.pid));
    const others = processesIn(roots).filter((pid) => !known.has(pid) && !isDescendantOf(pid, known));
    if (others.length) found.push(`${others.length} process(es) in the lab's cgroups without their machine: ${others.slice(0, 10).join(', ')}`);
    for (const dir of roots) found.push(`cgroup ${dir}`);
    return found;
  }

  async destroy(state: LabState): Promise<void> {
    const known = Object.values(state.machines).map((ms) => ms.process).filter(isAlive);
    await Promise.all([...known, ...this.processes().map((p) => p.process)].map((process) => stopNspawn(process, { hard: true })));
    for (const ms of Object.values(state.machines)) delete ms.process;
    // Whatever is left in the lab's cgroups is the lab's: machines whose nspawn died before them.
    const roots = labCgroupRoots(this.options.labName);
    const killAll = () => {
      const left = processesIn(roots);
      for (const pid of left) signalProcess(pid, 'SIGKILL');
      return left.length === 0;
    };
    // What outlives it keeps its cgroup, which lab doctor then lists.
    await holdsWithin(killAll, { within: LEFTOVER_KILL_MS, every: FAST });
    for (const dir of roots) removeCgroupTree(dir);
  }

  async start(machine: string, root: string, diskless?: DisklessBoot): Promise<ProcessRef> {
    const log = this.options.consoleLog(machine);
    mkdirSync(path.dirname(log), { recursive: true });
    const interfaces = this.options.interfaces(machine);
    // A first interface named host0 is nspawn's own: --network-bridge joins it to its bridge atomically.
    // Others (more networks, other names) are veths of ours that lab joins to their bridges.
    const [first, ...rest] = interfaces;
    const bridged = first?.name === 'host0' ? first : undefined;
    const extra = bridged ? rest : interfaces;
    // Each machine in cgroups of its own, so that the machines' systemds never share a cgroup tree.
    const cgroups = labCgroups(this.options.labName, machine);
    for (const dir of cgroups) removeCgroupTree(dir); // what its last boot left
    const pid = spawnDetached(
      inCgroups(cgroups, [
        ...this.options.netnsPrefix,
        ...nspawnArgv(root, this.options.nspawnName(machine)),
        '--boot',
        ...(bridged ? [`--network-bridge=${bridged.bridge}`] : []),
        ...extra.map((i) => `--network-veth-extra=${i.hostLink}:${i.name}`),
        ...bindOptions(this.options.binds(machine)),
        ...(diskless ? disklessOptions(diskless) : []),
        '--resolv-conf=off',
        '--console=read-only',
        ...(diskless ? disklessInit(diskless) : []),
      ]),
      log,
    );
    const ref = refOf(pid);
    if (!ref) throw new HostError(`systemd-nspawn for ${machine} exited at once:\n${tail(readFileSync(log, 'utf8'), 15)}`);
    await this.attach(ref, extra);
    return ref;
  }

  /**
   * Joins the host side of each of the machine's veths to its network's bridge, as soon as nspawn
   * has made it (every interface is a veth of ours, so that each can be on its own network; the
   * machine's networkd waits for the carrier).
   */
  private async attach(process: ProcessRef, interfaces: { hostLink: string; bridge: string }[]): Promise<void> {
    const ip = (...args: string[]) => run([...this.options.netnsPrefix, 'ip', ...args], { allowFailure: true });
    for (const iface of interfaces) {
      // Until the link shows joined and up: nspawn may still be setting it up when it first appears.
      await poll(`the veth ${iface.hostLink} of the machine to join ${iface.bridge}`, async () => {
        if (!isAlive(process)) return true; // it died: waitReady says why
        await ip('link', 'set', iface.hostLink, 'master', iface.bridge, 'up');
        const shown = (await ip('-o', 'link', 'show', 'dev', iface.hostLink)).stdout;
        return shown.includes(`master ${iface.bridge}`) && /[<,]UP[,>]/.test(shown);
      }, { within: 10_000, every: NORMAL });
    }
  }

  waitReady({ name: machine, process }: MachineHandle, timeoutMs: number): Promise<Readiness> {
    const consoleTail = () => tail(readFileSync(this.options.consoleLog(machine), 'utf8'), 15);
    const died = () => {
      if (isAlive(process)) return undefined;
      const said = consoleTail();
      const race = /Failed to add new veth interfaces|File exists/.test(said.split('\n').slice(-3).join('\n'));
      return new (race ? StartRace : InfraError)(`${machine} stopped while booting:\n${said}`);
    };
    return awaitBoot(
      machine,
      async (argv, timeout) => {
        const leader = nspawnLeader(process);
        // Until systemd listens on its private socket, systemctl could only say 'offline': looked for
        // from the host's side instead, for nothing (a command in a booting machine costs it CPU).
        if (!leader || !existsSync(`/proc/${leader}/root/run/systemd/private`)) return undefined;
        return this.execIn(leader, argv, { allowFailure: true, timeout });
      },
      died,
      timeoutMs,
      consoleTail,
    );
  }

  exec({ process }: MachineHandle, argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const leader = nspawnLeader(process);
    if (!leader) throw new InfraError('the machine is not running');
    return this.execIn(leader, argv, options);
  }

  private execIn(leader: number, argv: readonly string[], options: RunOptions): Promise<RunResult> {
    // A clean environment (the host's variables mean nothing inside), plus a tag that every process
    // the command starts inherits: on timeout or interruption, all of them are found and ended.
    const tag = execTag();
    const env = ['env', '-i', `PATH=${MACHINE_PATH}`, 'LANG=C.UTF-8', 'HOME=/root', `TERM=${process.env.TERM ?? 'dumb'}`, tag];
    // If lab itself is killed, nsenter dies with it (run gives every command a parent-death signal),
    // and the supervisor in the machine ends all the command started.
    return run(['nsenter', `--target=${leader}`, '--all', '--', ...env, ...SUPERVISOR, ...argv], {
      ...options,
      endAll: async () => void killByEnvironment(tag),
    });
  }

  async leaderPid({ process }: MachineHandle): Promise<number | undefined> {
    return nspawnLeader(process);
  }

  /** Read from the host, in the machine's routing table: no command in a machine still booting. */
  async unconfiguredInterfaces(handle: MachineHandle, expected: readonly ExpectedInterface[]): Promise<string[] | undefined> {
    return unconfiguredOf(await this.leaderPid(handle), expected);
  }

  async shell(handle: MachineHandle): Promise<number> {
    const result = await this.exec(handle, ['/bin/bash', '--login'], { inherit: true, allowFailure: true, timeout: 7 * 24 * 3600_000 });
    return result.exitCode;
  }

  async stop({ name, process }: MachineHandle, options: { hard: boolean }): Promise<void> {
    await stopNspawn(process, options);
    for (const dir of labCgroups(this.options.labName, name)) removeCgroupTree(dir);
  }
}

function parentOf(pid: number): number | undefined {
  const parent = statFields(pid)?.[1];
  return parent === undefined ? undefined : Number(parent);
}

function isDescendantOf(pid: number, ancestors: ReadonlySet<number>): boolean {
  for (let current = parentOf(pid), hops = 0; current && current > 1 && hops < 64; current = parentOf(current), hops++) if (ancestors.has(current)) return true;
  return false;
}

/**
 * `systemd-nspawn --boot` processes whose root is inside `machinesDir` (the lab's own), with the
 * machine each runs, by its nspawn machine name (`byNspawnName`); one of a name the lab no longer
 * has, by its root's directory.
 */
function findBootedMachines(machinesDir: string, byNspawnName: ReadonlyMap<string, string>): { machine: string; process: ProcessRef }[] {
  const prefix = `--directory=${machinesDir}/`;
  return findProcesses((argv) => Boolean(argv[0]?.endsWith('systemd-nspawn')) && argv.includes('--boot') && argv.some((a) => a.startsWith(prefix))).map(({ process, argv }) => {
    const named = byNspawnName.get(argv.find((a) => a.startsWith('--machine='))?.slice('--machine='.length) ?? '');
    return { machine: named ?? argv.find((a) => a.startsWith(prefix))!.slice(prefix.length).split('/')[0]!, process };
  });
}
