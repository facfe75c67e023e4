import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Topology, TopologyNetwork } from '../config/topology.js';
import { run } from '../exec.js';
import type { Tool } from '../host/prereq.js';
import type { LabNames } from '../layout.js';
import { NORMAL, poll } from '../wait.js';
import { IP_TOOL, linkExists, type Network } from './network.js';

/** A network's bridge, address and NAT as systemd-networkd files, the seeds' way, when networkd runs on the host. */
export function networkdFiles(network: TopologyNetwork): { netdev: string; network: string } {
  return {
    netdev: ['# Written by lab (lab destroy removes it).', '[NetDev]', `Name=${network.bridge}`, 'Kind=bridge', ''].join('\n'),
    network: [
      '# Written by lab (lab destroy removes it).',
      '[Match]',
      `Name=${network.bridge}`,
      '',
      '[Network]',
      ...(network.hostAddress ? [`Address=${network.hostAddress}/${network.prefixLength}`] : []),
      ...(network.nat ? ['IPMasquerade=ipv4'] : []),
      'ConfigureWithoutCarrier=yes',
      'LinkLocalAddressing=no',
      '',
    ].join('\n'),
  };
}

export class NetworkdNetwork implements Network {
  readonly mode = 'host' as const;
  readonly netnsPrefix: readonly string[] = [];
  private readonly dir = '/etc/systemd/network';

  constructor(
    private readonly topology: Topology,
    private readonly names: LabNames,
  ) {}

  private file(network: TopologyNetwork, extension: string): string {
    return path.join(this.dir, `70-${this.names.netns}-${network.bridge}.${extension}`);
  }

  private files(): string[] {
    return this.topology.networks.flatMap((n) => [this.file(n, 'netdev'), this.file(n, 'network')]);
  }

  async setup(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    for (const network of this.topology.networks) {
      const files = networkdFiles(network);
      writeFileSync(this.file(network, 'netdev'), files.netdev);
      writeFileSync(this.file(network, 'network'), files.network);
    }
    await run(['networkctl', 'reload']);
    // networkd configures the bridges asynchronously: wait for their addresses.
    for (const network of this.topology.networks.filter((n) => n.hostAddress)) {
      await poll(`systemd-networkd to configure ${network.bridge} (networkctl status ${network.bridge})`, async () => {
        const address = await run(['ip', '-4', '-o', 'address', 'show', 'dev', network.bridge], { allowFailure: true });
        return address.stdout.includes(`inet ${network.hostAddress}/`);
      }, { within: 20_000, every: NORMAL });
    }
  }

  tools(): Tool[] {
    return [IP_TOOL, { command: 'networkctl', debianPackage: 'systemd', why: "asks systemd-networkd to configure the lab's bridges" }];
  }

  async stopServices(): Promise<void> {}

  async leftovers(): Promise<string[]> {
    const found = this.files().filter(existsSync).map((file) => `networkd file ${file}`);
    for (const { bridge } of this.topology.networks) if (await linkExists([], bridge)) found.push(`bridge ${bridge}`);
    return found;
  }

  async destroy(): Promise<void> {
    for (const file of this.files()) rmSync(file, { force: true });
    await run(['networkctl', 'reload'], { allowFailure: true });
    // networkd does not delete a netdev whose file went away.
    for (const { bridge } of this.topology.networks) if (await linkExists([], bridge)) await run(['ip', 'link', 'delete', bridge]);
  }

  describe(): string {
    return `host, managed by systemd-networkd: ${this.dir}/70-${this.names.netns}-vz-*.netdev and .network (bridges ${this.topology.networks.map((n) => n.bridge).join(', ')}, addresses, IPMasquerade)`;
  }
}
