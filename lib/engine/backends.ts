import { existsSync } from 'node:fs';
import type { LabConfig, MachineConfig } from '../config/schema.js';
import { InfraError } from '../errors.js';
import { tail } from '../exec.js';
import { type MachineHandle, type Readiness, StartRace } from '../runtime/runtime.js';
import type { DisklessBoot } from '../runtime/nspawn-process.js';
import { type LabState, type ProcessRef, writeState, writeStateLater } from '../state/state.js';
import { isAlive } from '../state/process.js';
import { consoleTail } from '../vm/console.js';
import { delay, holdsWithin, NORMAL, SLOW } from '../wait.js';
import type { BareLab, Lab, MachineBackend } from './lab-types.js';
import { machineState, prepareBinds } from './machines.js';

/** Starts tried, SLOW apart (about 2 s in all), when the previous boot's veth is still being torn down by the kernel. */
const START_ATTEMPTS = 20;

const VM_MEMORY_MIB = 256;
/** A container was measured at about 23 MB (PSS) idle. */
const CONTAINER_MEMORY_MIB = 64;
/** A diskless machine at about 9 MB: its root's pages are shared with every other machine on that root. */
const DISKLESS_MEMORY_MIB = 24;

const container: MachineBackend = {
  what: 'a container',
  start: (lab, state, name, options) => {
    const root = lab.dirs.machineRoot(name);
    if (!existsSync(root)) throw new InfraError(`machine ${name} has no root yet (build it with: lab up)`);
    return bootContainer(lab, state, name, root, undefined, options);
  },
  stop: (lab, handle, options) => lab.runtime.stop(handle, options),
  exec: (lab, handle, argv, options) => lab.runtime.exec(handle, argv, options),
  leaderPid: (lab, handle) => lab.runtime.leaderPid(handle),
  async diagnostics(lab, name, process, lines) {
    if (!isAlive(process)) return { failedUnits: '(not running)', journal: '' };
    const exec = (argv: string[]) => lab.runtime.exec({ name, process }, argv, { allowFailure: true, timeout: 20_000 }).then((r) => r.stdout);
    return {
      failedUnits: await exec(['systemctl', 'list-units', '--failed', '--no-pager', '--plain']),
      journal: await exec(['journalctl', '--no-pager', '-n', String(lines)]),
    };
  },
  memoryMiB: () => CONTAINER_MEMORY_MIB,
  memoryShare: (count) => `${count} machines (${CONTAINER_MEMORY_MIB} MiB each)`,
  downWhileItsServerIs: false,
};

/** A container on a directory of its root machine's root, with its own identity bound over it (engine/diskless.ts). */
const diskless: MachineBackend = {
  ...container,
  what: 'a diskless machine',
  async start(lab, state, name, options) {
    const rootOwner = lab.config.machines.find((m) => m.name === name)!.root!.machine;
    if (!existsSync(lab.dirs.machineRoot(rootOwner))) throw new InfraError(`machine ${rootOwner} has no root yet (build it with: lab up)`);
    // Loaded only for a diskless machine: lab exec never pays for it.
    const { directory, boot } = (await import('./diskless.js')).disklessBoot(lab, name);
    return bootContainer(lab, state, name, directory, boot, options);
  },
  memoryMiB: () => DISKLESS_MEMORY_MIB,
  memoryShare: (count) => `${count} diskless machines (${DISKLESS_MEMORY_MIB} MiB each)`,
};

/** A vm is up once qemu runs with its console open: what it boots is for its console to tell (waitForConsoleText). */
const vm: MachineBackend = {
  what: 'a vm',
  async start(lab, state, name) {
    const started = Date.now();
    machineState(state, name).process = await lab.vms.start(name);
    writeState(lab.dirs.stateFile, state);
    return recordBoot(lab, state, name, started, { state: 'running', failedUnits: [], bootMs: 0 });
  },
  stop: (lab, handle) => lab.vms.stop(handle.name, handle.process),
  console: (lab, name) => ({ socket: lab.vms.consoleSocket(name), log: lab.dirs.consoleLog(name) }),
  // Running or not, its console log is what it said (down, how it went down).
  diagnostics: async (lab, name, process, lines) => ({ failedUnits: isAlive(process) ? '(a vm: no units lab can read)' : '(not running)', journal: consoleTail(lab.dirs.consoleLog(name), lines) }),
  memoryMiB: (machine) => machine.vm?.memoryMiB ?? VM_MEMORY_MIB,
  memoryShare: (_, mib) => `its vms (${mib} MiB)`,
  downWhileItsServerIs: true,
};

const BACKENDS: Record<MachineConfig['kind'], MachineBackend> = { container, diskless, vm };

/** Each machine's backend, by its kind in the config; a name the config no longer has but the state does is a container's. */
export function backendsOf(config: Pick<LabConfig, 'machines'>): (name: string) => MachineBackend {
  const chosen = new Map(config.machines.map((m) => [m.name, BACKENDS[m.kind]]));
  return (name) => chosen.get(name) ?? container;
}

/** The host's memory the machines take at the most, a share per backend (in the table's order): its total, and how a refusal says it. */
export function memoryShares(machines: readonly MachineConfig[], backendOf: (name: string) => MachineBackend): { mib: number; said: string }[] {
  return Object.values(BACKENDS).flatMap((backend) => {
    const its = machines.filter((m) => backendOf(m.name) === backend);
    const mib = its.reduce((sum, m) => sum + backend.memoryMiB(m), 0);
    return its.length > 0 ? [{ mib, said: backend.memoryShare(its.length, mib) }] : [];
  });
}

/**
 * Boots a container from `directory` and waits until systemd reports it up; with `waitForNetwork`,
 * also until its interfaces are configured (address assigned, DHCP lease taken). `lab up` asks for
 * that; a restore does not, since a restored lab may have no DHCP server yet.
 */
async function bootContainer(lab: Lab, state: LabState, name: string, directory: string, boot: DisklessBoot | undefined, options: { waitForNetwork: boolean }): Promise<Readiness> {
  await prepareBinds(lab, name);
  const ms = machineState(state, name);
  const started = Date.now();
  const timeoutS = lab.config.boot.timeoutSeconds;
  let readiness: Readiness | undefined;
  let process!: ProcessRef;
  for (let attempt = 1; !readiness; attempt++) {
    process = ms.process = await lab.runtime.start(name, directory, boot);
    writeStateLater(lab.dirs.stateFile, state);
    try {
      readiness = await lab.runtime.waitReady({ name, process }, timeoutS * 1000);
    } catch (error) {
      if (!(error instanceof StartRace) || attempt >= START_ATTEMPTS) throw error;
      await delay(SLOW);
    }
  }
  if (options.waitForNetwork) await interfacesConfigured(lab, { name, process }, timeoutS * 1000);
  return recordBoot(lab, state, name, started, readiness);
}

/**
 * Until every interface of the machine is configured (its address, static or leased, and its
 * default route where it has one), seen from the host in the machine's routing table: no command
 * in a machine that is still busy booting. On expiry, networkd's own account of its links.
 */
async function interfacesConfigured(lab: BareLab, handle: MachineHandle, timeoutMs: number): Promise<void> {
  const { name } = handle;
  const expected = lab.topology.machines.find((m) => m.name === name)!.interfaces.map((iface) => ({
    name: iface.name,
    defaultRoute: iface.defaultRoute && Boolean(lab.topology.networks.find((n) => n.name === iface.network)?.gateway),
  }));
  let missing = expected.map((i) => i.name);
  const configured = await holdsWithin(
    async () => {
      const unconfigured = await lab.runtime.unconfiguredInterfaces(handle, expected);
      if (!unconfigured) throw new InfraError(`${name} stopped while its interfaces were being configured`);
      missing = unconfigured;
      return missing.length === 0;
    },
    { within: timeoutMs, every: NORMAL },
  );
  if (configured) return;
  const links = await lab.runtime.exec(handle, ['networkctl', '--no-pager', 'list'], { allowFailure: true, timeout: 5000 }).catch(() => undefined);
  const said = links ? tail(`${links.stdout}${links.stderr}`, 10) : '';
  throw new InfraError(`${name} booted but its interfaces (${missing.join(', ')}) were not configured (an address, and the default route where it has one) within ${timeoutMs / 1000} s${said ? `:\n${said}` : ''}`);
}

function recordBoot(lab: BareLab, state: LabState, name: string, started: number, readiness: Readiness): Readiness {
  const ms = machineState(state, name);
  ms.bootMs = Date.now() - started;
  writeStateLater(lab.dirs.stateFile, state);
  return { ...readiness, bootMs: ms.bootMs };
}
