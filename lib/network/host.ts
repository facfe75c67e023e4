import { readFileSync, writeFileSync } from 'node:fs';
import type { LabConfig } from '../config/schema.js';
import { run } from '../exec.js';
import type { Tool } from '../host/prereq.js';
import type { LabNames } from '../lab.js';
import type { LabState } from '../state/state.js';
import { IP_TOOL, linkExists, type Network, NFT_TOOL, nftTableExists, setupBridge, setupNat } from './network.js';

/** On the host itself, as the SADM scripts do: the machines reach the host's real uplink. */
export class HostNetwork implements Network {
  readonly mode = 'host' as const;
  readonly netnsPrefix: readonly string[] = [];

  constructor(
    private readonly config: LabConfig,
    private readonly names: LabNames,
  ) {}

  async setup(state: LabState): Promise<void> {
    await setupBridge([], this.names.bridge, this.config);
    state.hostIpForward ??= readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
    writeFileSync('/proc/sys/net/ipv4/ip_forward', '1\n');
    await setupNat([], this.names.nftTable, this.config, this.names.bridge);
  }

  tools(): Tool[] {
    return [IP_TOOL, NFT_TOOL];
  }

  async stopServices(): Promise<void> {}

  async leftovers(): Promise<string[]> {
    const found: string[] = [];
    if (await linkExists([], this.names.bridge)) found.push(`bridge ${this.names.bridge}`);
    if (await nftTableExists([], this.names.nftTable)) found.push(`nft table ip ${this.names.nftTable}`);
    return found;
  }

  async destroy(state: LabState): Promise<void> {
    if (await linkExists([], this.names.bridge)) await run(['ip', 'link', 'delete', this.names.bridge]);
    await run(['nft', 'delete', 'table', 'ip', this.names.nftTable], { allowFailure: true });
    if (state.hostIpForward !== undefined) writeFileSync('/proc/sys/net/ipv4/ip_forward', `${state.hostIpForward}\n`);
    delete state.hostIpForward;
  }

  describe(): string {
    return `host: zone bridge ${this.names.bridge} and NAT (nft table ${this.names.nftTable}) on the host, machines reach the host's uplink`;
  }
}

