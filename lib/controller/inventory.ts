import { isHostIn, parseSubnet } from '../config/ip.js';
import type { LabConfig, MachineConfig } from '../config/schema.js';
import type { Topology, TopologyMachine } from '../config/topology.js';

/**
 * The lab as an Ansible inventory and an SSH config, from the controller's side (the lab's
 * namespace in sandbox mode, the host in host mode): pure, from the topology and the addresses
 * that DHCP gave running machines.
 */

/** How the controller reaches a machine: an address, directly or through the machine routing its network. */
export interface Reach {
  address: string;
  /** The router to jump through (SADM's ProxyJump root@gw), when the controller has no address on the machine's network. */
  via?: string;
}

export interface InventoryInterface {
  name: string;
  network: string;
  /** Static, or what DHCP gave it (when the machine runs), else 'dhcp'. */
  address: string;
  mac: string;
}

export interface InventoryHost {
  name: string;
  kind: MachineConfig['kind'];
  groups: string[];
  /** Undefined for a vm or a diskless machine (no SSH into them) or a machine the controller cannot reach. */
  reach?: Reach;
  interfaces: InventoryInterface[];
}

export interface Inventory {
  lab: string;
  domain: string;
  hosts: InventoryHost[];
  /**
   * lab's SSH config, given to each reachable host as `ansible_ssh_common_args`: a host's own
   * variable, so it wins over a team's group variable (SADM's `-F inventory/ssh.cfg` for the event).
   */
  sshConfig?: string;
}

/**
 * Whether the controller can log into a machine: a container, with the built-in ssh stage. A vm has
 * no agent of lab's, and a diskless machine's root is another machine's directory, which that stage
 * does not build.
 */
export function hasSsh(machine: Pick<MachineConfig, 'kind'>): boolean {
  return machine.kind === 'container';
}

/** Groups lab puts every machine in, by kind. */
export const KIND_GROUPS = { container: 'lab_containers', vm: 'lab_vms', diskless: 'lab_diskless' } as const;

/** Addresses DHCP gave running machines: machine -> network -> address. */
export type LiveAddresses = ReadonlyMap<string, ReadonlyMap<string, string>>;

/** Which network an address is on, given a running machine's local addresses. */
export function addressesByNetwork(topology: Topology, machine: TopologyMachine, local: readonly string[]): Map<string, string> {
  const found = new Map<string, string>();
  for (const iface of machine.interfaces) {
    const subnet = parseSubnet(topology.networks.find((n) => n.name === iface.network)!.subnet);
    const address = iface.address !== 'dhcp' ? iface.address : local.find((a) => isHostIn(a, subnet));
    if (address) found.set(iface.network, address);
  }
  return found;
}

export function inventoryOf(config: LabConfig, topology: Topology, live: LiveAddresses = new Map(), sshConfig?: string): Inventory {
  const addressOn = (machine: TopologyMachine, network: string): string | undefined => {
    const iface = machine.interfaces.find((i) => i.network === network);
    if (!iface) return undefined;
    return iface.address !== 'dhcp' ? iface.address : live.get(machine.name)?.get(network);
  };
  // The networks the controller has an address on.
  const directNetworks = new Set(topology.networks.filter((n) => n.hostAddress !== undefined).map((n) => n.name));
  // `seen`: the machines asking, so that two machines routing each other's networks end the search.
  const reachOf = (machine: TopologyMachine, seen: ReadonlySet<string>): Reach | undefined => {
    if (!hasSsh(machine) || seen.has(machine.name)) return undefined;
    const asking = new Set([...seen, machine.name]);
    const direct = machine.interfaces.filter((i) => directNetworks.has(i.network)).map((i) => addressOn(machine, i.network)).find((a) => a !== undefined);
    if (direct) return { address: direct };
    // Through the router of one of its networks; a DHCP address not known yet is the router's to resolve (its DNS).
    for (const iface of machine.interfaces) {
      const router = topology.machines.find((m) => m.name === topology.networks.find((n) => n.name === iface.network)?.router);
      if (router && router.name !== machine.name && reachOf(router, asking)) return { address: addressOn(machine, iface.network) ?? `${machine.name}.${topology.domain}`, via: router.name };
    }
    // On a NAT'ed network by DHCP before its address is known: through the DNS machine, which names it.
    const dns = topology.machines.find((m) => m.name === topology.dnsMachine);
    if (dns && dns.name !== machine.name && machine.interfaces.some((i) => directNetworks.has(i.network)) && reachOf(dns, asking)) {
      return { address: `${machine.name}.${topology.domain}`, via: dns.name };
    }
    return undefined;
  };
  const hosts = topology.machines.map((machine): InventoryHost => {
    const configured = config.machines.find((m) => m.name === machine.name)!;
    return {
      name: machine.name,
      kind: machine.kind,
      groups: configured.groups,
      reach: reachOf(machine, new Set()),
      interfaces: machine.interfaces.map((i) => ({ name: i.name, network: i.network, address: addressOn(machine, i.network) ?? 'dhcp', mac: i.mac })),
    };
  });
  return { lab: config.name, domain: topology.domain, hosts, sshConfig };
}

/** What a play's result depends on in lab's inventory: names, groups, how each is reached, networks, static addresses and MACs, not DHCP's leases. */
export function inventoryIdentity(config: LabConfig, topology: Topology): unknown {
  return inventoryOf(config, topology).hosts;
}

function hostVars(host: InventoryHost, inventory: Inventory): Record<string, unknown> {
  return {
    ...(host.reach ? { ansible_host: host.reach.address } : {}),
    ...(host.reach && inventory.sshConfig ? { ansible_ssh_common_args: `-F ${inventory.sshConfig}` } : {}),
    lab_kind: host.kind,
    lab_fqdn: `${host.name}.${inventory.domain}`,
    // SADM's host_vars/<machine>/mac.yml: the MAC of its first card.
    mac: host.interfaces[0]?.mac,
    lab_interfaces: host.interfaces.map((i) => ({ ...i })),
  };
}

function groupsOf(inventory: Inventory): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  const add = (group: string, host: string) => groups.set(group, [...(groups.get(group) ?? []), host]);
  for (const host of inventory.hosts) {
    add(KIND_GROUPS[host.kind], host.name);
    for (const group of host.groups) add(group, host.name);
  }
  return groups;
}

const ALL_VARS = (inventory: Inventory) => ({ ansible_user: 'root', ansible_python_interpreter: '/usr/bin/python3', lab_name: inventory.lab, lab_domain: inventory.domain });

/** Ansible's YAML inventory (what `-i` reads), as a plain object. */
export function inventoryYamlObject(inventory: Inventory): unknown {
  const children = Object.fromEntries([...groupsOf(inventory)].map(([group, hosts]) => [group, { hosts: Object.fromEntries(hosts.map((h) => [h, null])) }]));
  return { all: { vars: ALL_VARS(inventory), hosts: Object.fromEntries(inventory.hosts.map((h) => [h.name, hostVars(h, inventory)])), children } };
}

/** What `ansible-inventory --list` prints: groups, and every host's variables under `_meta`. */
export function inventoryJson(inventory: Inventory): unknown {
  const groups = groupsOf(inventory);
  return {
    _meta: { hostvars: Object.fromEntries(inventory.hosts.map((h) => [h.name, { ...ALL_VARS(inventory), ...hostVars(h, inventory) }])) },
    all: { children: ['ungrouped', ...groups.keys()], vars: ALL_VARS(inventory) },
    ungrouped: { hosts: [] },
    ...Object.fromEntries([...groups].map(([group, hosts]) => [group, { hosts }])),
  };
}

/** The INI form: variables inline, a string with spaces double-quoted, lists as single-quoted JSON (what Ansible's INI parser reads back as they were). */
export function inventoryIni(inventory: Inventory): string {
  const value = (v: unknown) => (typeof v !== 'string' ? `'${JSON.stringify(v)}'` : /^[\w.:/-]+$/.test(v) ? v : JSON.stringify(v));
  const line = (h: InventoryHost) => [h.name, ...Object.entries(hostVars(h, inventory)).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${value(v)}`)].join(' ');
  const sections = [`[all]\n${inventory.hosts.map(line).join('\n')}`];
  for (const [group, hosts] of groupsOf(inventory)) sections.push(`[${group}]\n${hosts.join('\n')}`);
  sections.push(`[all:vars]\n${Object.entries(ALL_VARS(inventory)).map(([k, v]) => `${k}=${v}`).join('\n')}`);
  return `${sections.join('\n\n')}\n`;
}

export interface SshFiles {
  key: string;
  knownHosts: string;
  /** `NAME=value` sent to every session (SetEnv): what a stage's timeout finds its processes in the machines by. */
  sessionTag?: string;
}

/**
 * An SSH config with a block per reachable machine (by name and by the address the inventory
 * gives), a jump through the router for a machine on a routed network, the lab's key, and the
 * lab's known hosts checked strictly (each machine's host key is read from its root).
 */
export function sshConfig(inventory: Inventory, files: SshFiles): string {
  const blocks: string[] = [];
  for (const host of inventory.hosts) {
    if (!host.reach) continue;
    const patterns = [...new Set([host.name, host.reach.address])];
    blocks.push([`Host ${patterns.join(' ')}`, `  HostName ${host.reach.address}`, `  HostKeyAlias ${host.name}`, ...(host.reach.via ? [`  ProxyJump ${host.reach.via}`] : [])].join('\n'));
  }
  blocks.push(
    [
      'Host *',
      '  User root',
      `  IdentityFile ${files.key}`,
      '  IdentitiesOnly yes',
      `  UserKnownHostsFile ${files.knownHosts}`,
      '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking yes',
      '  BatchMode yes',
      '  ConnectTimeout 10',
      '  ServerAliveInterval 5',
      '  ServerAliveCountMax 6',
      '  LogLevel ERROR',
      ...(files.sessionTag ? [`  SetEnv ${files.sessionTag}`] : []),
    ].join('\n'),
  );
  return `# lab ${inventory.lab}: SSH from the controller (ssh -F this-file <machine>)\n${blocks.join('\n\n')}\n`;
}

/** known_hosts lines: each machine's host key under its name (the HostKeyAlias of its block). */
export function knownHosts(keys: ReadonlyMap<string, string>): string {
  return [...keys].map(([machine, key]) => `${machine} ${key.trim().split(/\s+/).slice(0, 2).join(' ')}\n`).join('');
}

/** The host names and groups an Ansible pattern names, exclusions left out: `web:&prod:!gw` names web and prod. */
export function limitTokens(pattern: string): string[] {
  return pattern.split(/[,:]/).map((t) => t.trim()).filter((t) => t !== '' && !t.startsWith('!')).map((t) => t.replace(/^&/, ''));
}
