import { readFileSync, writeFileSync } from 'node:fs';
import type { Topology } from '../config/topology.js';
import { run } from '../exec.js';
import type { Tool } from '../host/prereq.js';
import type { LabNames } from '../layout.js';
import type { LabState } from '../state/state.js';
import { IP_TOOL, linkExists, type Network, NFT_TOOL, nftTableExists, setupBridges, setupNat } from './network.js';

/** On the host itself, as the SADM scripts do: the machines reach the host's real uplink. */
export class HostNetwork implements Network {
  readonly mode = 'host' as const;
  readonly netnsPrefix: readonly string[] = [];

  constructor(
    private readonly topology: Topology,
    private readonly names: LabNames,
    /** DNAT rules of the published ports, on the host's own addresses. */
    private readonly published: readonly string[] = [],
  ) {}

  async setup(state: LabState): Promise<void> {
    await setupBridges([], this.topology.networks);
    state.hostIpForward ??= readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
    writeFileSync('/proc/sys/net/ipv4/ip_forward', '1\n');
    await setupNat([], this.names.nftTable, this.topology.networks, this.published);
  }

  tools(): Tool[] {
    return [IP_TOOL, NFT_TOOL];
  }

  async stopServices(): Promise<void> {}

  async leftovers(): Promise<string[]> {
    const found: string[] = [];
    for (const { bridge } of this.topology.networks) if (await linkExists([], bridge)) found.push(`bridge ${bridge}`);
    if (await nftTableExists([], this.names.nftTable)) found.push(`nft table ip ${this.names.nftTable}`);
    return found;
  }

  async destroy(state: LabState): Promise<void> {
    for (const { bridge } of this.topology.networks) if (await linkExists([], bridge)) await run(['ip', 'link', 'delete', bridge]);
    await run(['nft', 'delete', 'table', 'ip', this.names.nftTable], { allowFailure: true });
    if (state.hostIpForward !== undefined) writeFileSync('/proc/sys/net/ipv4/ip_forward', `${state.hostIpForward}\n`);
    delete state.hostIpForward;
  }

  describe(): string {
    return `host: bridges ${this.topology.networks.map((n) => n.bridge).join(', ')} and NAT (nft table ${this.names.nftTable}) on the host, machines reach the host's uplink`;
  }
}

