import { createHash } from 'node:crypto';
import { ipToInt, isHostIn, nthAddress, parseSubnet, type Subnet } from './ip.js';
import type { DisklessRoot, LabConfig, MachineConfig } from './schema.js';

/**
 * The lab's networks and every machine's interfaces, normalized from the config: `networks` and
 * `interfaces` when given, otherwise the single `zone` and each machine's `address` (the
 * one-network case, as before). Pure: planning, stages and drivers all read it.
 */
export interface TopologyNetwork {
  name: string;
  /** The bridge every interface on the network is joined to. */
  bridge: string;
  subnet: string;
  prefixLength: number;
  /** Masqueraded to the outside through the host (sandbox: the simulated internet). */
  nat: boolean;
  /** The host's address on it (a NAT'ed network's gateway), if any. */
  hostAddress?: string;
  /** The machine that routes the network (SADM's gw): the host neither routes nor forwards for it. */
  router?: string;
  /** The gateway of machines on the network: the router's address on it, else the host's. */
  gateway?: string;
  /** The machine serving DNS and DHCP on it, with its address there and the DHCP range. */
  dhcp?: { server: string; serverAddress: string; start: string; end: string };
}

export interface TopologyInterface {
  network: string;
  /** Its name inside the machine: host0 for the first (as nspawn names it), then host1, ... unless named. */
  name: string;
  address: string | 'dhcp';
  /** The host side of its veth pair, in the lab's namespace (15 characters at most). */
  hostLink: string;
  /** The machine's default route goes out of this interface (to the network's gateway). */
  defaultRoute: boolean;
  /** The MAC lab gives the card (stable for the machine and network, so DHCP and an inventory can name it); a vm's tap is `hostLink`. */
  mac: string;
}

export interface TopologyMachine {
  name: string;
  kind: MachineConfig['kind'];
  /** A diskless machine's root: a directory of another machine's. */
  root?: DisklessRoot;
  interfaces: TopologyInterface[];
  /** Routes at least one network: it forwards between its networks. */
  router: boolean;
  /** Its ports published on the host side of the lab (`publish`), when it has any. */
  published?: { port: number; hostPort: number; protocol: 'tcp' | 'udp' }[];
}

export interface Topology {
  domain: string;
  networks: TopologyNetwork[];
  machines: TopologyMachine[];
  /** The machine serving DNS (and DHCP on its networks), if any. */
  dnsMachine?: string;
}

/** Interfaces of a machine as the config gives them: explicit, or its `address` on the first network. */
export function configuredInterfaces(config: LabConfig, machine: MachineConfig): { network: string; address: string; name?: string }[] {
  if (machine.interfaces && machine.interfaces.length > 0) return machine.interfaces;
  return [{ network: configuredNetworks(config)[0]!.name, address: machine.address }];
}

/** The networks as the config gives them: `networks`, or the zone as the one network. */
export function configuredNetworks(config: LabConfig): { name: string; subnet: string; nat: boolean; hostAddress?: string; router?: string }[] {
  if (config.networks && config.networks.length > 0) return config.networks;
  return [{ name: config.zone.name, subnet: config.zone.subnet, nat: true, hostAddress: config.zone.hostAddress }];
}

/**
 * A machine's MAC on a network, stable for the machine and network: a vm's with qemu's 52:54:00
 * prefix, a container's locally administered (02:), set by networkd in the machine. Not the lab's
 * name: it is in the system stage's snapshot, which labs of one config share (lab cache pull),
 * and each lab's networks are bridges of its own.
 */
export function interfaceMac(machine: string, network: string, kind: MachineConfig['kind']): string {
  const bytes = createHash('sha256').update(`mac/${machine}/${network}`).digest('hex');
  return kind === 'vm' ? `52:54:00:${bytes.slice(0, 6).match(/../g)!.join(':')}` : `02:${bytes.slice(0, 10).match(/../g)!.join(':')}`;
}

/** A short, stable name for the host side of a veth: interface names have 15 characters at most. */
export function hostLinkName(lab: string, machine: string, network: string): string {
  return `vl${createHash('sha256').update(`${lab}/${machine}/${network}`).digest('hex').slice(0, 11)}`;
}

/** The host's address on a network: its `hostAddress`, else the first one of a NAT'ed network (none on a routed or isolated one). */
function hostAddressOf(network: { nat: boolean; hostAddress?: string; router?: string }, subnet: Subnet): string | undefined {
  return network.hostAddress ?? (network.nat && !network.router ? nthAddress(subnet, 1) : undefined);
}

function dhcpRange(subnet: Subnet): { start: string; end: string } {
  return { start: nthAddress(subnet, Math.floor(subnet.size / 2)), end: nthAddress(subnet, subnet.size - 10) };
}

export function topologyOf(config: LabConfig): Topology {
  const networks = configuredNetworks(config);
  const dns = config.zone.dnsMachine ?? undefined;
  const interfacesOf = new Map(config.machines.map((m) => [m.name, configuredInterfaces(config, m)]));
  const addressOn = (machine: string | undefined, network: string) => (machine ? interfacesOf.get(machine)?.find((i) => i.network === network)?.address : undefined);
  const topologyNetworks = networks.map((network): TopologyNetwork => {
    const subnet = parseSubnet(network.subnet);
    const routerAddress = addressOn(network.router, network.name);
    const hostAddress = hostAddressOf(network, subnet);
    const serverAddress = addressOn(dns, network.name);
    return {
      name: network.name,
      bridge: `vz-${network.name}`,
      subnet: network.subnet,
      prefixLength: subnet.prefix,
      nat: network.nat,
      hostAddress,
      router: network.router,
      gateway: network.router ? (routerAddress !== 'dhcp' ? routerAddress : undefined) : hostAddress,
      dhcp: dns && serverAddress && serverAddress !== 'dhcp' ? { server: dns, serverAddress, ...dhcpRange(subnet) } : undefined,
    };
  });
  const byName = new Map(topologyNetworks.map((n) => [n.name, n]));
  const machines = config.machines.map((machine): TopologyMachine => {
    const configured = interfacesOf.get(machine.name)!;
    // The default route: the first interface whose network has a gateway other than this machine.
    const defaultIndex = configured.findIndex((i) => {
      const network = byName.get(i.network)!;
      return network.gateway !== undefined && network.router !== machine.name;
    });
    return {
      name: machine.name,
      kind: machine.kind,
      ...(machine.root ? { root: machine.root } : {}),
      router: topologyNetworks.some((n) => n.router === machine.name),
      ...(machine.publish.length ? { published: machine.publish.map((p) => ({ port: p.port, hostPort: p.hostPort ?? p.port, protocol: p.protocol })) } : {}),
      interfaces: configured.map((i, index) => ({
        network: i.network,
        name: i.name ?? `host${index}`,
        address: i.address,
        hostLink: hostLinkName(config.name, machine.name, i.network),
        defaultRoute: index === defaultIndex,
        mac: interfaceMac(machine.name, i.network, machine.kind),
      })),
    };
  });
  return { domain: config.zone.domain, networks: topologyNetworks, machines, dnsMachine: dns };
}

/** A problem with the networks and interfaces, naming the field; undefined when there is none. */
export function topologyProblem(config: LabConfig, wanSubnet?: Subnet): string | undefined {
  const networks = configuredNetworks(config);
  const names = networks.map((n) => n.name);
  const subnets = networks.map((n) => parseSubnet(n.subnet));
  const machineNames = config.machines.map((m) => m.name);
  for (const [i, network] of networks.entries()) {
    const field = config.networks?.length ? `networks.${i}` : 'zone';
    if (names.indexOf(network.name) !== i) return `${field}.name: the network '${network.name}' is declared twice`;
    for (let j = 0; j < i; j++) {
      const [a, b] = [subnets[i]!, subnets[j]!];
      if (a.network < b.network + b.size && b.network < a.network + a.size) return `${field}.subnet: ${network.subnet} overlaps network '${networks[j]!.name}' (${networks[j]!.subnet})`;
    }
    if (wanSubnet && subnets[i]!.network < wanSubnet.network + wanSubnet.size && wanSubnet.network < subnets[i]!.network + subnets[i]!.size) {
      return `${field}.subnet: ${network.subnet} overlaps the simulated internet (network.wanSubnet)`;
    }
    if (network.hostAddress && !isHostIn(network.hostAddress, subnets[i]!)) return `${field}.hostAddress: ${network.hostAddress} is not a host address of ${network.subnet}`;
    if (network.router && !machineNames.includes(network.router)) return `${field}.router: unknown machine '${network.router}' (machines: ${machineNames.join(', ')})`;
    if (network.router && network.nat) return `${field}: a network is NAT'ed by the host or routed by a machine, not both (nat with router '${network.router}')`;
  }
  const owners = new Map<string, string>();
  for (const [i, network] of networks.entries()) {
    const hostAddress = hostAddressOf(network, subnets[i]!);
    if (hostAddress) owners.set(hostAddress, `the host on '${network.name}'${network.hostAddress ? '' : " (its hostAddress: by default a NAT'ed network's first address)"}`);
  }
  for (const [m, machine] of config.machines.entries()) {
    const interfaces = configuredInterfaces(config, machine);
    const field = machine.interfaces?.length ? `machines.${m}.interfaces` : `machines.${m}.address`;
    const seen = new Set<string>();
    for (const [k, iface] of interfaces.entries()) {
      const at = machine.interfaces?.length ? `${field}.${k}` : field;
      const n = names.indexOf(iface.network);
      if (n < 0) return `${at}.network: unknown network '${iface.network}' (networks: ${names.join(', ')})`;
      if (seen.has(iface.network)) return `${at}.network: '${machine.name}' has two interfaces on '${iface.network}'`;
      seen.add(iface.network);
      if (iface.address === 'dhcp') continue;
      if (!isHostIn(iface.address, subnets[n]!)) return `${at}${machine.interfaces?.length ? '.address' : ''}: ${iface.address} is not a host address of ${networks[n]!.subnet} (network '${iface.network}')`;
      const owner = owners.get(iface.address);
      if (owner) return `${at}${machine.interfaces?.length ? '.address' : ''}: ${iface.address} is already used by ${owner}`;
      owners.set(iface.address, `machine '${machine.name}'`);
    }
    const ifnames = interfaces.map((iface, k) => iface.name ?? `host${k}`);
    const twice = ifnames.find((name, k) => ifnames.indexOf(name) !== k);
    if (twice) return `${field}: '${machine.name}' names two interfaces '${twice}'`;
  }
  for (const [i, network] of networks.entries()) {
    if (!network.router) continue;
    const router = config.machines.find((m) => m.name === network.router)!;
    const iface = configuredInterfaces(config, router).find((f) => f.network === network.name);
    if (!iface) return `networks.${i}.router: '${network.router}' has no interface on '${network.name}', the network it routes`;
    if (iface.address === 'dhcp') return `networks.${i}.router: '${network.router}' routes '${network.name}', so it needs a static address there`;
  }
  for (const [i, network] of networks.entries()) {
    const clients = config.machines.filter((m) => configuredInterfaces(config, m).some((f) => f.network === network.name && f.address === 'dhcp')).length;
    const range = dhcpRange(subnets[i]!);
    const size = ipToInt(range.end) - ipToInt(range.start) + 1;
    if (clients > size) {
      const field = config.networks?.length ? `networks.${i}.subnet` : 'zone.subnet';
      return `${field}: ${clients} machines take an address by DHCP on '${network.name}', but its DHCP range (${range.start} to ${range.end}) holds ${size}: use a larger subnet`;
    }
  }
  const dns = config.zone.dnsMachine;
  for (const [m, machine] of config.machines.entries()) {
    for (const iface of configuredInterfaces(config, machine)) {
      if (iface.address !== 'dhcp') continue;
      const server = dns ? configuredInterfaces(config, config.machines.find((x) => x.name === dns)!).find((f) => f.network === iface.network) : undefined;
      if (!dns) return `zone.dnsMachine: '${machine.name}' takes an address by DHCP but no machine serves it`;
      if (!server) return `machines.${m}: '${machine.name}' takes an address by DHCP on '${iface.network}', where the DHCP machine '${dns}' has no interface`;
      if (server.address === 'dhcp') return `zone.dnsMachine: '${dns}' serves DHCP on '${iface.network}', so it needs a static address there`;
    }
  }
  return undefined;
}

/**
 * What a machine waits for before it boots: its `dependsOn`, the zone's DHCP server when it takes its
 * address by DHCP, and a diskless machine's root machine (up, so its root is in place).
 */
export function machineDependencies(config: Pick<LabConfig, 'zone'>, machine: MachineConfig): string[] {
  const dns = config.zone.dnsMachine;
  const dhcp = machine.interfaces?.length ? machine.interfaces.some((i) => i.address === 'dhcp') : machine.address === 'dhcp';
  const implicit = dhcp && dns && dns !== machine.name ? [dns] : [];
  return [...new Set([...machine.dependsOn, ...implicit, ...(machine.root ? [machine.root.machine] : [])])];
}

/**
 * A container runs as systemd-nspawn: one of kind container, with a root lab builds in stages, or a
 * diskless one, on another machine's directory; a vm boots its own disk or from the network. Here
 * and not beside the schema: the schema loads zod, which the commands people type all day (restore,
 * exec, status) must not pay for.
 */
export function isContainer(machine: Pick<MachineConfig, 'kind'>): boolean {
  return machine.kind !== 'vm';
}

/** A root of its own, built in stages (the built-in system stage first): a machine of kind container. */
export function hasStages(machine: Pick<MachineConfig, 'kind'>): boolean {
  return machine.kind === 'container';
}
