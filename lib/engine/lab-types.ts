// The lab and its machine backends as types only: the engine's modules, and the backends that
// lab.ts chooses, take a lab without importing lab.ts (which imports the backends).
import type { Topology } from '../config/topology.js';
import type { LabConfig, MachineConfig } from '../config/schema.js';
import type { RunOptions, RunResult } from '../exec.js';
import type { HostProfile } from '../host/profile.js';
import type { NosuidBinds } from '../host/nosuid-binds.js';
import type { ImageDriver } from '../image/image.js';
import type { LabDirs, LabNames } from '../layout.js';
import type { LinkFaults } from '../network/faults.js';
import type { Network } from '../network/network.js';
import type { PackageProxy } from '../network/package-proxy.js';
import type { BuildSteps } from '../runtime/build-steps.js';
import type { MachineHandle, Readiness, Runtime } from '../runtime/runtime.js';
import type { LoadedLab } from '../stages/load.js';
import type { LabState, ProcessRef } from '../state/state.js';
import type { Storage } from '../storage/storage.js';
import type { QemuVms } from '../vm/qemu.js';

/**
 * Everything about one lab, resolved and validated. Opening it reads the config, the stages and
 * the host's files, and runs, creates and checks nothing on the host (but thaws machines a killed
 * command left frozen): the commands that touch the host check what they need (`assertUsable`),
 * so that doctor and destroy work on a broken host.
 */
export interface Lab {
  config: LabConfig;
  configFile?: string;
  names: LabNames;
  dirs: LabDirs;
  loaded: LoadedLab;
  image: ImageDriver;
  storage: Storage;
  network: Network;
  profile: HostProfile;
  /** The lab's networks and every machine's interfaces. */
  topology: Topology;
  runtime: Runtime;
  /** The machines of kind vm (qemu), whatever the runtime of the containers. */
  vms: QemuVms;
  /** What lab does with a machine of its kind: start, stop, commands, console (engine/backends.ts). */
  backendOf(name: string): MachineBackend;
  /** Build steps on stopped roots, whatever the runtime. */
  buildSteps: BuildSteps;
  /** Links that scenarios cut, delay or impair (with the relays that delay them on a kernel without netem). */
  faults: LinkFaults;
  /** Writable bind sources made nosuid,nodev on the host while a machine uses them. */
  nosuidBinds: NosuidBinds;
  /** Shared between labs: packages downloaded for stages, per distribution and suite. */
  packageCache: string;
  /** The package proxy of running machines' apt, forwarding to the image's mirrors only. */
  packageProxy: PackageProxy;
}

/** A lab without its stages: what commands that run no stage (exec, shell, down, destroy, doctor) need. */
export type BareLab = Omit<Lab, 'loaded'>;

/**
 * What lab does with a machine, by its kind, chosen once per machine (`lab.backendOf`): engine and
 * CLI code ask the backend what the machine can do, never its kind. A container runs under the
 * lab's runtime (nspawn or machinectl) on its own root, a diskless machine the same on a directory
 * of its root machine's root; a vm is a qemu process with no agent in it: lab runs no command in
 * it and has no way into its files, and it has a serial console instead.
 */
export interface MachineBackend {
  /** What a message calls it: `web is a vm: ...`. */
  readonly what: string;
  /** Boots it, its process written into the state as soon as there is one, and waits until it is up; `bootMs` recorded. */
  start(lab: Lab, state: LabState, name: string, options: { waitForNetwork: boolean }): Promise<Readiness>;
  stop(lab: BareLab, handle: MachineHandle, options: { hard: boolean }): Promise<void>;
  /** Runs a command in it while it runs (never throws for a non-zero exit with `allowFailure`); none where lab has no way in. */
  exec?(lab: BareLab, handle: MachineHandle, argv: readonly string[], options: RunOptions): Promise<RunResult>;
  /** Its init's pid on the host, by which its files and cgroup are found; none where lab has no way in. */
  leaderPid?(lab: BareLab, handle: MachineHandle): Promise<number | undefined>;
  /** Its serial console: the socket to attach to and the log of its boot; none for a container (lab shell is its way in). */
  console?(lab: BareLab, name: string): { socket: string; log: string };
  /** What a failed run shows of it, running or not (`process` undefined or gone): its failed units and the last `lines` it said. */
  diagnostics(lab: BareLab, name: string, process: ProcessRef | undefined, lines: number): Promise<{ failedUnits: string; journal: string }>;
  /** What it takes of the host's memory at the most, for the check before a lab boots: room to boot and work, or a vm's own. */
  memoryMiB(machine: MachineConfig): number;
  /** How a refusal for memory names `count` such machines taking `mib` in all: `3 machines (64 MiB each)`. */
  memoryShare(count: number, mib: number): string;
  /**
   * Goes down while a machine it depends on has its stages applied again, and boots once that is
   * back: a vm netboots from its DHCP server and knows nothing of it coming back.
   */
  readonly downWhileItsServerIs: boolean;
}
