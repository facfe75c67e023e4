import type { LabConfig } from '../config/schema.js';
import type { Topology } from '../config/topology.js';

/** A port of a machine published on the host side of the lab: what comes to `hostPort` goes to the machine. */
export interface PublishedPort {
  machine: string;
  protocol: 'tcp' | 'udp';
  hostPort: number;
  /** The machine's static address on a NAT'ed network, and its port there. */
  address: string;
  port: number;
}

/** Where a machine's published ports go: its static address on a NAT'ed network, if it has one. */
function natAddress(topology: Topology, machine: string): string | undefined {
  const nat = (network: string) => topology.networks.find((n) => n.name === network)!.nat;
  return topology.machines.find((m) => m.name === machine)!.interfaces.find((i) => i.address !== 'dhcp' && nat(i.network))?.address;
}

/** Every published port of the lab, with the machine's address it goes to. */
export function publishedPorts(config: LabConfig, topology: Topology): PublishedPort[] {
  return config.machines.flatMap((machine) =>
    machine.publish.map((p) => ({ machine: machine.name, protocol: p.protocol, hostPort: p.hostPort ?? p.port, address: natAddress(topology, machine.name) ?? '', port: p.port })),
  );
}

/** A problem with the published ports, naming the field; undefined when there is none. */
export function publishProblem(config: LabConfig, topology: Topology): string | undefined {
  const taken = new Map<string, string>();
  for (const [i, machine] of config.machines.entries()) {
    if (machine.publish.length === 0) continue;
    const field = `machines.${i}.publish`;
    if (machine.kind === 'vm') return `${field}: a vm publishes no port (its address is its DHCP server's to give)`;
    if (!natAddress(topology, machine.name)) return `${field}: '${machine.name}' needs a static address on a NAT'ed network to publish a port`;
    for (const [j, p] of machine.publish.entries()) {
      const key = `${p.protocol}/${p.hostPort ?? p.port}`;
      const owner = taken.get(key);
      if (owner) return `${field}.${j}: host port ${key} is already published by ${owner}`;
      taken.set(key, `'${machine.name}'`);
    }
  }
  return undefined;
}

/**
 * nftables DNAT rules for the published ports: sandbox mode on the lab's uplink address (the
 * simulated internet is the outside world), host mode on the host's own addresses.
 */
export function publishRules(ports: readonly PublishedPort[], on: { iifname: string; daddr: string } | 'host'): string[] {
  return ports.map((p) => {
    const match = on === 'host' ? 'fib daddr type local' : `iifname "${on.iifname}" ip daddr ${on.daddr}`;
    return `    ${match} ${p.protocol} dport ${p.hostPort} dnat to ${p.address}:${p.port}`;
  });
}

/** The sockets of a /proc/net/{tcp,udp}[6] table: each one's local port, and its state (hex; TCP's LISTEN is 0A). */
export function socketPorts(table: string): { port: number; state: string }[] {
  return table
    .split('\n')
    .slice(1)
    .flatMap((line) => {
      const [, local, , state] = line.trim().split(/\s+/);
      return local && state ? [{ port: parseInt(local.split(':').at(-1)!, 16), state }] : [];
    });
}

/** TCP ports something listens on, from /proc/net/tcp and tcp6. */
export function listeningTcpPorts(tables: readonly string[]): Set<number> {
  return new Set(tables.flatMap((table) => socketPorts(table).filter((s) => s.state === '0A').map((s) => s.port)));
}
