/**
 * Machines booted together with their DHCP server ask for an address before it listens, and their
 * client's backoff then waits seconds (about 5) before asking again. The kick tells them to ask
 * again (`networkctl reconfigure`) as soon as the server listens, seen from /proc: no command runs
 * until then.
 */
import { readFileSync } from 'node:fs';
import type { Topology } from '../config/topology.js';
import { localAddresses } from '../host/procs.js';
import type { Runtime } from '../runtime/runtime.js';
import type { LabState } from '../state/state.js';
import { FAST, holdsWithin } from '../wait.js';
import { socketPorts } from './ports.js';

/** What the kick needs of a lab: its networks and machines, and the runtime to look into them. */
export interface DhcpLab {
  topology: Topology;
  runtime: Pick<Runtime, 'leaderPid' | 'exec'>;
}

const DHCP_SERVER_PORT = 67;
/** networkctl answers at once; a machine whose networkd is not up yet asks on its own when it is. */
const RECONFIGURE_TIMEOUT_MS = 5000;

/** Whether the machine is the DHCP server of one of the lab's networks. */
export function servesDhcp(topology: Topology, machine: string): boolean {
  return topology.networks.some((n) => n.dhcp?.server === machine);
}

/** Whether a /proc/net/udp table has a socket on the DHCP server's port. */
export function dhcpPortOpen(udpTable: string): boolean {
  return socketPorts(udpTable).some((socket) => socket.port === DHCP_SERVER_PORT);
}

/**
 * Resolves once the machine has a socket on UDP port 67 (its DHCP server listens), read in its
 * network namespace through /proc; also when its boot ends, either way, or after `within` ms.
 */
export async function whenDhcpListens(lab: DhcpLab, state: LabState, machine: string, boot: Promise<unknown>, within: number): Promise<void> {
  let booted = false;
  void boot.then(
    () => (booted = true),
    () => (booted = true),
  );
  await holdsWithin(async () => booted || (await listening(lab, state, machine)), { within, every: FAST });
}

async function listening(lab: DhcpLab, state: LabState, machine: string): Promise<boolean> {
  const process = state.machines[machine]?.process;
  const leader = process ? await lab.runtime.leaderPid({ name: machine, process }) : undefined;
  if (leader === undefined) return false;
  try {
    return dhcpPortOpen(readFileSync(`/proc/${leader}/net/udp`, 'utf8'));
  } catch {
    return false; // the machine is gone, or not yet there
  }
}

/**
 * The machines still booting (`booting`) that take addresses from `server`'s DHCP ask again at
 * once. Best effort: one that has all its addresses already is left alone (reconfiguring would
 * drop its lease), and one whose networkd is not up yet asks on its own when it is.
 */
export async function kickDhcpClients(lab: DhcpLab, state: LabState, server: string, booting: ReadonlySet<string>): Promise<void> {
  const served = new Set(lab.topology.networks.filter((n) => n.dhcp?.server === server).map((n) => n.name));
  if (served.size === 0) return;
  await Promise.all(
    lab.topology.machines
      .filter((m) => m.kind === 'container' && booting.has(m.name) && state.machines[m.name]?.process)
      .map(async (m) => {
        const interfaces = m.interfaces.filter((i) => i.address === 'dhcp' && served.has(i.network)).map((i) => i.name);
        if (interfaces.length === 0) return;
        const handle = { name: m.name, process: state.machines[m.name]!.process! };
        const leader = await lab.runtime.leaderPid(handle);
        if (leader === undefined || localAddresses(leader).length >= m.interfaces.length) return;
        await lab.runtime.exec(handle, ['networkctl', 'reconfigure', ...interfaces], { allowFailure: true, timeout: RECONFIGURE_TIMEOUT_MS }).catch(() => undefined);
      }),
  );
}
