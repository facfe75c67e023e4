import path from 'node:path';
import type { TopologyNetwork } from '../config/topology.js';
import type { HostDriver } from '../driver.js';
import { run } from '../exec.js';
import type { Tool } from '../host/prereq.js';
import type { LabState } from '../state/state.js';

const NETNS_DIR = '/run/netns';

export interface Network extends HostDriver {
  readonly mode: 'sandbox' | 'host';
  /** argv prefix that runs a command in the namespace holding the zone (empty on the host). */
  readonly netnsPrefix: readonly string[];
  /** Sandbox: where the simulated internet answers, and the address the lab's NAT shows it. */
  readonly internet?: { address: string; uplinkAddress: string; port: number };
  /** Creates what is missing: bridge with the zone's host address, NAT, forwarding. Idempotent. */
  setup(state: LabState): Promise<void>;
  /** Stops the lab's own processes on the network (the simulated internet's server). */
  stopServices(state: LabState): Promise<void>;
}

export const netnsPath = (name: string) => path.join(NETNS_DIR, name);
export const inNetns = (name: string) => ['nsenter', `--net=${netnsPath(name)}`, '--'];

export async function linkExists(prefix: readonly string[], link: string): Promise<boolean> {
  const result = await run([...prefix, 'ip', 'link', 'show', 'dev', link], { allowFailure: true });
  return result.exitCode === 0;
}

/**
 * A bridge per network, up, with the host's address on the networks that have one (a network a
 * machine routes has none: the host takes no part in it). Created before any machine boots.
 */
export async function setupBridges(prefix: readonly string[], networks: readonly TopologyNetwork[]): Promise<void> {
  for (const network of networks) {
    if (!(await linkExists(prefix, network.bridge))) await run([...prefix, 'ip', 'link', 'add', network.bridge, 'type', 'bridge']);
    if (network.hostAddress) await run([...prefix, 'ip', 'address', 'replace', `${network.hostAddress}/${network.prefixLength}`, 'dev', network.bridge]);
    await run([...prefix, 'ip', 'link', 'set', network.bridge, 'up']);
  }
}

/**
 * The NAT of the NAT'ed networks: their traffic leaving through anything but a lab bridge is
 * masqueraded, and from outside only replies and published ports (DNAT'ed) come in: a route to a
 * zone's subnet added outside reaches no machine. Routed networks behind a router on a NAT'ed
 * network are closed the same way; between its own bridges the lab forwards freely. Other traffic
 * the host forwards (host mode) is not this table's business: the policy stays accept. Replaces
 * the table whole.
 */
export function natRuleset(table: string, networks: readonly TopologyNetwork[], published: readonly string[] = []): string {
  const bridges = networks.map((n) => `"${n.bridge}"`).join(', ');
  const natted = networks.filter((n) => n.nat);
  return [
    `table ip ${table}`,
    `delete table ip ${table}`,
    `table ip ${table} {`,
    // Published ports: what comes to them from outside goes to their machine.
    ...(published.length ? ['  chain prerouting {', '    type nat hook prerouting priority dstnat; policy accept;', ...published, '  }'] : []),
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    ...natted.map((n) => `    ip saddr ${n.subnet} oifname != { ${bridges} } masquerade`),
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    ...natted.flatMap((n) => [
      `    iifname "${n.bridge}" oifname != { ${bridges} } accept`,
      `    oifname "${n.bridge}" ct state established,related accept`,
      `    oifname "${n.bridge}" ct status dnat accept`,
      `    oifname "${n.bridge}" iifname != { ${bridges} } drop`,
    ]),
    '  }',
    '}',
    '',
  ].join('\n');
}

export async function setupNat(prefix: readonly string[], table: string, networks: readonly TopologyNetwork[], published: readonly string[] = []): Promise<void> {
  await run([...prefix, 'nft', '-f', '-'], { input: natRuleset(table, networks, published) });
}

export const IP_TOOL: Tool = { command: 'ip', debianPackage: 'iproute2', why: 'bridges, veths and namespaces' };
export const NFT_TOOL: Tool = { command: 'nft', debianPackage: 'nftables', why: 'NAT for the zone' };

/** The lab's nft table, if it exists in the namespace `prefix` runs in. */
export async function nftTableExists(prefix: readonly string[], table: string): Promise<boolean> {
  return (await run([...prefix, 'nft', 'list', 'table', 'ip', table], { allowFailure: true })).exitCode === 0;
}
