import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { chooseAccelerator } from './accelerator.js';
import { canInspectDisks, diskImageProblem } from './disk.js';
import path from 'node:path';
import type { MachineConfig } from '../config/schema.js';
import type { Topology, TopologyInterface } from '../config/topology.js';
import type { HostDriver } from '../driver.js';
import { HostError, UsageError } from '../errors.js';
import { REACH_ANY_PATH, run, spawnDetached, withCapabilities } from '../exec.js';
import { findProcesses } from '../host/procs.js';
import { SETPRIV_TOOL, type Tool } from '../host/prereq.js';
import { endProcess, isAlive, refOf } from '../state/process.js';
import type { LabState, ProcessRef } from '../state/state.js';
import { FAST, poll } from '../wait.js';

export const QEMU_TOOL: Tool = { command: 'qemu-system-x86_64', debianPackage: 'qemu-system-x86', why: 'runs the vm machines' };

export interface VmSpec {
  /** The process name and qemu's guest name: `<lab>-<machine>`. */
  guestName: string;
  memoryMiB: number;
  cpus: number;
  boot: 'network' | 'disk';
  disk?: string;
  interfaces: Pick<TopologyInterface, 'hostLink' | 'mac'>[];
  accelerator: 'kvm' | 'tcg';
  /** The serial console: a socket to attach to (lab console, sendConsole), every byte also in `consoleLog`. */
  consoleSocket: string;
  consoleLog: string;
}

/**
 * qemu's system call filter: seccomp on, and every group of calls it can refuse refused (obsolete
 * calls, set*id, fork and exec, scheduling and priorities), as libvirt runs qemu by default. A vm
 * here needs none of them: its taps exist before qemu opens them (no script to spawn), and qemu
 * keeps root's uid (no -runas, whose set*id this filter would refuse).
 */
export const QEMU_SANDBOX = 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny';

/**
 * qemu's argv for a vm: no default devices, no display; the serial console on a socket and logged
 * from the start of each boot, the firmware's and iPXE's output included; an e1000 card per
 * interface on a tap lab made (iPXE is its boot ROM in Debian's ipxe-qemu); a disk used copy-on-write (snapshot=on: the image is never written).
 * It runs with net_admin (attaching to a tap it does not own) and dac_read_search (a disk image under
 * a user's home directory) alone of root's capabilities, under its seccomp sandbox.
 */
export function qemuArgv(spec: VmSpec): string[] {
  const argv = [
    'qemu-system-x86_64',
    '-name', `guest=${spec.guestName},process=${spec.guestName}`,
    '-sandbox', QEMU_SANDBOX,
    '-nodefaults', '-display', 'none', '-no-user-config',
    // No graphics: SeaBIOS then writes its screen to the serial port, and iPXE's lines with it (else on VGA alone).
    '-machine', 'graphics=off',
    // The host's CPU, without IA32_ARCH_CAPABILITIES: nested KVM (this machine's, among others) refuses that MSR.
    ...(spec.accelerator === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host,-arch-capabilities'] : ['-accel', 'tcg', '-cpu', 'max']),
    '-m', String(spec.memoryMiB),
    '-smp', String(spec.cpus),
    '-chardev', `socket,id=console,path=${spec.consoleSocket},server=on,wait=off,logfile=${spec.consoleLog},logappend=off`,
    '-serial', 'chardev:console',
  ];
  spec.interfaces.forEach((i, index) => {
    argv.push('-netdev', `tap,id=net${index},ifname=${i.hostLink},script=no,downscript=no`, '-device', `e1000,netdev=net${index},mac=${i.mac}`);
  });
  if (spec.boot === 'disk') argv.push('-drive', `file=${spec.disk},if=virtio,snapshot=on`, '-boot', 'order=c');
  else argv.push('-boot', 'order=n');
  return withCapabilities(['net_admin', REACH_ANY_PATH], argv);
}

export interface VmDriverOptions {
  labName: string;
  machines: readonly MachineConfig[];
  topology: Topology;
  /** argv prefix into the lab's network namespace (empty in host mode). */
  netnsPrefix: readonly string[];
  /** Where the consoles' sockets are: inside the lab's state directory. */
  socketsDir: string;
  consoleLog(machine: string): string;
  nspawnName(machine: string): string;
}

const CONSOLE_WITHIN_MS = 10_000;
const STOP_WITHIN_MS = 5_000;

/** The lab's vm machines: qemu processes it starts by pid, on taps it makes; everything carries the lab's name. */
export class QemuVms implements HostDriver {
  constructor(private readonly options: VmDriverOptions) {}

  get names(): string[] {
    return this.options.machines.filter((m) => m.kind === 'vm').map((m) => m.name);
  }

  has(machine: string): boolean {
    return this.names.includes(machine);
  }

  tools(): Tool[] {
    return this.names.length ? [QEMU_TOOL, SETPRIV_TOOL] : [];
  }

  describe(): string {
    return `qemu for ${this.names.join(', ') || 'no machine'}`;
  }

  /** What the vms run with, and why (lab doctor says so). */
  async accelerator(): Promise<string> {
    const chosen = await chooseAccelerator();
    return `${chosen.kind}: ${chosen.why}`;
  }

  consoleSocket(machine: string): string {
    return path.join(this.options.socketsDir, `${machine}.console`);
  }

  async spec(machine: string): Promise<VmSpec> {
    const config = this.options.machines.find((m) => m.name === machine)!;
    const vm = config.vm ?? { memoryMiB: 256, cpus: 1, boot: 'network' as const };
    return {
      guestName: this.options.nspawnName(machine),
      memoryMiB: vm.memoryMiB,
      cpus: vm.cpus,
      boot: vm.boot,
      disk: vm.disk,
      interfaces: this.interfacesOf(machine),
      accelerator: (await chooseAccelerator()).kind,
      consoleSocket: this.consoleSocket(machine),
      consoleLog: this.options.consoleLog(machine),
    };
  }

  /** A vm's disk that is not a disk image it can boot is refused, exit 2 naming the field (see vm/disk.ts). */
  async assertDisk(machine: string): Promise<void> {
    const index = this.options.machines.findIndex((m) => m.name === machine);
    const vm = this.options.machines[index]?.vm;
    if (vm?.boot !== 'disk' || !vm.disk) return;
    const problem = await diskImageProblem(vm.disk);
    if (problem) throw new UsageError(`invalid config: machines.${index}.vm.disk: ${vm.disk}: ${problem}`);
  }

  private interfacesOf(machine: string): (TopologyInterface & { bridge: string })[] {
    const topology = this.options.topology;
    return topology.machines.find((m) => m.name === machine)!.interfaces.map((i) => ({ ...i, bridge: topology.networks.find((n) => n.name === i.network)!.bridge }));
  }

  /**
   * Makes the vm's taps (joined to their bridges, up) and starts qemu in the lab's namespace;
   * returns once its console listens, with the process (pid and start time).
   */
  async start(machine: string): Promise<ProcessRef> {
    const prefix = this.options.netnsPrefix;
    for (const i of this.interfacesOf(machine)) {
      await run([...prefix, 'ip', 'link', 'delete', i.hostLink], { allowFailure: true }); // a tap left by a qemu that was killed
      await run([...prefix, 'ip', 'tuntap', 'add', 'dev', i.hostLink, 'mode', 'tap']);
      await run([...prefix, 'ip', 'link', 'set', i.hostLink, 'master', i.bridge, 'up']);
    }
    // Without qemu-img, the disk could not be looked at before anything was made: it is now.
    if (!canInspectDisks()) await this.assertDisk(machine);
    const spec = await this.spec(machine);
    mkdirSync(this.options.socketsDir, { recursive: true, mode: 0o700 });
    mkdirSync(path.dirname(spec.consoleLog), { recursive: true });
    rmSync(spec.consoleSocket, { force: true });
    const pid = spawnDetached([...prefix, ...qemuArgv(spec)], path.join(path.dirname(spec.consoleLog), 'qemu.log'));
    const process = refOf(pid);
    if (!process) throw new HostError(`qemu for ${machine} exited at once: see ${path.join(path.dirname(spec.consoleLog), 'qemu.log')}`);
    await poll(`qemu for ${machine} to open its console`, () => {
      if (existsSync(spec.consoleSocket)) return true;
      if (!isAlive(process)) throw new HostError(`qemu for ${machine} exited: ${tailOf(path.join(path.dirname(spec.consoleLog), 'qemu.log'))}`);
      return false;
    }, {
      within: CONSOLE_WITHIN_MS,
      every: FAST,
      onTimeout: () => new HostError(`qemu for ${machine} did not open its console within ${CONSOLE_WITHIN_MS} ms`),
    });
    return process;
  }

  /** A vm has nothing to shut down cleanly for (no disk it writes): SIGTERM, then SIGKILL; its taps go. */
  async stop(machine: string, process: ProcessRef): Promise<void> {
    await endProcess(process, 'qemu', STOP_WITHIN_MS);
    for (const i of this.interfacesOf(machine)) await run([...this.options.netnsPrefix, 'ip', 'link', 'delete', i.hostLink], { allowFailure: true });
  }

  /** qemu processes of this lab: their console socket is in the lab's state directory. */
  private processes(): { machine: string; process: ProcessRef }[] {
    const prefix = `path=${this.options.socketsDir}/`;
    return findProcesses((argv) => Boolean(argv[0]?.endsWith('qemu-system-x86_64')) && argv.some((a) => a.includes(prefix))).map(({ process, argv }) => ({
      machine: path.basename(argv.find((a) => a.includes(prefix))!.split(',').find((p) => p.startsWith('path='))!.slice(5), '.console'),
      process,
    }));
  }

  async leftovers(): Promise<string[]> {
    const found = this.processes().map(({ machine, process }) => `vm ${machine} running (qemu pid ${process.pid})`);
    if (this.options.netnsPrefix.length === 0) {
      for (const machine of this.names) {
        for (const i of this.interfacesOf(machine)) if ((await run(['ip', 'link', 'show', 'dev', i.hostLink], { allowFailure: true })).exitCode === 0) found.push(`tap ${i.hostLink} of vm ${machine}`);
      }
    }
    return found;
  }

  async destroy(state: LabState): Promise<void> {
    const known = this.names.map((m) => state.machines[m]?.process).filter(isAlive);
    await Promise.all([...known, ...this.processes().map((p) => p.process)].map((p) => endProcess(p, 'qemu', STOP_WITHIN_MS)));
    for (const machine of this.names) {
      delete state.machines[machine]?.process;
      for (const i of this.interfacesOf(machine)) await run([...this.options.netnsPrefix, 'ip', 'link', 'delete', i.hostLink], { allowFailure: true });
    }
    rmSync(this.options.socketsDir, { recursive: true, force: true });
  }
}

function tailOf(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-5).join('\n');
  } catch {
    return '(no output)';
  }
}
