import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseSubnet } from '../config/ip.js';
import type { LabConfig } from '../config/schema.js';
import { run } from '../exec.js';
import type { Tool } from '../host/prereq.js';
import type { LabNames } from '../lab.js';
import { waitFor } from '../wait.js';
import { IP_TOOL, linkExists, type Network } from './network.js';

/** The zone's bridge, address and NAT as systemd-networkd files, the seeds' way, when networkd runs on the host. */
export function networkdFiles(config: LabConfig, names: LabNames): { netdev: string; network: string } {
  const prefixLength = parseSubnet(config.zone.subnet).prefix;
  return {
    netdev: ['# Written by lab (lab destroy removes it).', '[NetDev]', `Name=${names.bridge}`, 'Kind=bridge', ''].join('\n'),
    network: [
      '# Written by lab (lab destroy removes it).',
      '[Match]',
      `Name=${names.bridge}`,
      '',
      '[Network]',
      `Address=${config.zone.hostAddress}/${prefixLength}`,
      'IPMasquerade=ipv4',
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
    private readonly config: LabConfig,
    private readonly names: LabNames,
  ) {}

  private file(extension: string): string {
    return path.join(this.dir, `70-${this.names.netns}-${this.names.bridge}.${extension}`);
  }

  async setup(): Promise<void> {
    const files = networkdFiles(this.config, this.names);
    mkdirSync(this.dir, { recursive: true });
    writeFileSync(this.file('netdev'), files.netdev);
    writeFileSync(this.file('network'), files.network);
    await run(['networkctl', 'reload']);
    // networkd configures the bridge asynchronously: wait for the address.
    await waitFor(`systemd-networkd to configure ${this.names.bridge} (networkctl status ${this.names.bridge})`, async () => {
      const address = await run(['ip', '-4', '-o', 'address', 'show', 'dev', this.names.bridge], { allowFailure: true });
      return address.stdout.includes(`inet ${this.config.zone.hostAddress}/`);
    }, 20_000);
  }

  tools(): Tool[] {
    return [IP_TOOL, { command: 'networkctl', debianPackage: 'systemd', why: 'asks systemd-networkd to configure the zone bridge' }];
  }

  async stopServices(): Promise<void> {}

  async leftovers(): Promise<string[]> {
    const found = ['netdev', 'network'].map((ext) => this.file(ext)).filter(existsSync).map((file) => `networkd file ${file}`);
    if (await linkExists([], this.names.bridge)) found.push(`bridge ${this.names.bridge}`);
    return found;
  }

  async destroy(): Promise<void> {
    rmSync(this.file('netdev'), { force: true });
    rmSync(this.file('network'), { force: true });
    await run(['networkctl', 'reload'], { allowFailure: true });
    // networkd does not delete a netdev whose file went away.
    if (await linkExists([], this.names.bridge)) await run(['ip', 'link', 'delete', this.names.bridge]);
  }

  describe(): string {
    return `host, managed by systemd-networkd: ${this.file('netdev')} and .network (bridge ${this.names.bridge}, address, IPMasquerade)`;
  }
}

