import path from 'node:path';
import { parseSubnet } from '../config/ip.js';
import type { LabConfig } from '../config/schema.js';
import type { HostDriver } from '../driver.js';
import { run } from '../exec.js';
import type { Tool } from '../host/prereq.js';
import type { LabState } from '../state/state.js';

export const NETNS_DIR = '/run/netns';

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

/** The zone bridge with the host address, up. Created before any machine boots (see FEASIBILITY: readiness). */
export async function setupBridge(prefix: readonly string[], bridge: string, config: LabConfig): Promise<void> {
  if (!(await linkExists(prefix, bridge))) await run([...prefix, 'ip', 'link', 'add', bridge, 'type', 'bridge']);
  const prefixLength = parseSubnet(config.zone.subnet).prefix;
  await run([...prefix, 'ip', 'address', 'replace', `${config.zone.hostAddress}/${prefixLength}`, 'dev', bridge]);
  await run([...prefix, 'ip', 'link', 'set', bridge, 'up']);
}

/** The NAT: the zone's traffic leaving through any other interface is masqueraded. Replaces the table whole. */
export async function setupNat(prefix: readonly string[], table: string, config: LabConfig, bridge: string): Promise<void> {
  const ruleset = [
    `table ip ${table}`,
    `delete table ip ${table}`,
    `table ip ${table} {`,
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    ip saddr ${config.zone.subnet} oifname != "${bridge}" masquerade`,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    `    iifname "${bridge}" accept`,
    `    oifname "${bridge}" ct state established,related accept`,
    '  }',
    '}',
    '',
  ].join('\n');
  await run([...prefix, 'nft', '-f', '-'], { input: ruleset });
}

export const IP_TOOL: Tool = { command: 'ip', debianPackage: 'iproute2', why: 'bridges, veths and namespaces' };
export const NFT_TOOL: Tool = { command: 'nft', debianPackage: 'nftables', why: 'NAT for the zone' };

/** The lab's nft table, if it exists in the namespace `prefix` runs in. */
export async function nftTableExists(prefix: readonly string[], table: string): Promise<boolean> {
  return (await run([...prefix, 'nft', 'list', 'table', 'ip', table], { allowFailure: true })).exitCode === 0;
}
