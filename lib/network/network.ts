import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { nthAddress, parseSubnet } from '../config/ip.js';
import type { LabConfig } from '../config/schema.js';
import { LabError } from '../errors.js';
import { run, spawnDetached } from '../exec.js';
import type { LabDirs, LabNames } from '../lab.js';
import { packageRoot } from '../paths.js';
import { isAlive, refOf } from '../state/process.js';
import type { LabState } from '../state/state.js';
import { waitFor } from '../wait.js';

const NETNS_DIR = '/run/netns';
const UPLINK = 'uplink';
const WAN = 'wan';
const WAN_SERVER_PORT = 80;

export interface Network {
  readonly mode: 'sandbox' | 'host';
  /** argv prefix that runs a command in the namespace holding the zone (empty on the host). */
  readonly netnsPrefix: readonly string[];
  /** Sandbox: where the simulated internet answers, and the address the lab's NAT shows it. */
  readonly internet?: { address: string; uplinkAddress: string; port: number };
  /** Creates what is missing: bridge with the zone's host address, NAT, forwarding. Idempotent. */
  setup(state: LabState): Promise<void>;
  /** Stops the lab's own processes on the network (the simulated internet's server). */
  stopServices(state: LabState): Promise<void>;
  /** Removes everything `setup` made. */
  teardown(state: LabState): Promise<void>;
  describe(): string;
}

export function createNetwork(config: LabConfig, names: LabNames, dirs: LabDirs, profile: { networkd: boolean }): Network {
  if (config.network.mode === 'sandbox') return new SandboxNetwork(config, names, dirs);
  return profile.networkd ? new NetworkdNetwork(config, names) : new HostNetwork(config, names);
}

const netnsPath = (name: string) => path.join(NETNS_DIR, name);
const inNetns = (name: string) => ['nsenter', `--net=${netnsPath(name)}`, '--'];

async function linkExists(prefix: readonly string[], link: string): Promise<boolean> {
  const result = await run([...prefix, 'ip', 'link', 'show', 'dev', link], { allowFailure: true });
  return result.exitCode === 0;
}

/** The zone bridge with the host address, up. Created before any machine boots (see FEASIBILITY: readiness). */
async function setupBridge(prefix: readonly string[], bridge: string, config: LabConfig): Promise<void> {
  if (!(await linkExists(prefix, bridge))) await run([...prefix, 'ip', 'link', 'add', bridge, 'type', 'bridge']);
  const prefixLength = parseSubnet(config.zone.subnet).prefix;
  await run([...prefix, 'ip', 'address', 'replace', `${config.zone.hostAddress}/${prefixLength}`, 'dev', bridge]);
  await run([...prefix, 'ip', 'link', 'set', bridge, 'up']);
}

/** The NAT: the zone's traffic leaving through any other interface is masqueraded. Replaces the table whole. */
async function setupNat(prefix: readonly string[], table: string, config: LabConfig, bridge: string): Promise<void> {
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

/** Hermetic: zone, NAT and a stand-in internet in namespaces the lab owns; no packet leaves the machine. */
class SandboxNetwork implements Network {
  readonly mode = 'sandbox' as const;
  readonly netnsPrefix: readonly string[];
  readonly internet: { address: string; uplinkAddress: string; port: number };
  private readonly wanPrefixLength: number;

  constructor(
    private readonly config: LabConfig,
    private readonly names: LabNames,
    private readonly dirs: LabDirs,
  ) {
    this.netnsPrefix = inNetns(names.netns);
    const wan = parseSubnet(config.network.wanSubnet);
    this.wanPrefixLength = wan.prefix;
    this.internet = { address: nthAddress(wan, 1), uplinkAddress: nthAddress(wan, 2), port: WAN_SERVER_PORT };
  }

  async setup(state: LabState): Promise<void> {
    const { netns, wanNetns, bridge, nftTable } = this.names;
    // The WAN server starts last: when it runs in existing namespaces, an earlier setup completed.
    if (existsSync(netnsPath(netns)) && existsSync(netnsPath(wanNetns)) && isAlive(state.wanServer)) return;
    for (const ns of [netns, wanNetns]) if (!existsSync(netnsPath(ns))) await run(['ip', 'netns', 'add', ns]);
    const lab = this.netnsPrefix;
    const wan = inNetns(wanNetns);
    await run([...lab, 'ip', 'link', 'set', 'lo', 'up']);
    await run([...wan, 'ip', 'link', 'set', 'lo', 'up']);
    await setupBridge(lab, bridge, this.config);
    if (!(await linkExists(lab, UPLINK))) {
      await run([...lab, 'ip', 'link', 'add', UPLINK, 'type', 'veth', 'peer', 'name', WAN, 'netns', netnsPath(wanNetns)]);
    }
    await run([...lab, 'ip', 'address', 'replace', `${this.internet.uplinkAddress}/${this.wanPrefixLength}`, 'dev', UPLINK]);
    await run([...wan, 'ip', 'address', 'replace', `${this.internet.address}/${this.wanPrefixLength}`, 'dev', WAN]);
    await run([...lab, 'ip', 'link', 'set', UPLINK, 'up']);
    await run([...wan, 'ip', 'link', 'set', WAN, 'up']);
    await run([...lab, 'ip', 'route', 'replace', 'default', 'via', this.internet.address]);
    await run([...lab, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    await setupNat(lab, nftTable, this.config, bridge);
    await this.startWanServer(state);
  }

  private async startWanServer(state: LabState): Promise<void> {
    if (isAlive(state.wanServer)) return;
    const ready = path.join(this.dirs.state, 'wan-server.ready');
    rmSync(ready, { force: true });
    const script = path.join(packageRoot, 'dist', 'lib', 'network', 'wan-echo.js');
    const pid = spawnDetached(
      [...inNetns(this.names.wanNetns), process.execPath, script, this.internet.address, String(WAN_SERVER_PORT), ready],
      path.join(this.dirs.logs, 'wan-server.log'),
    );
    state.wanServer = refOf(pid);
    const server = state.wanServer;
    await waitFor('the simulated internet\'s server', () => {
      if (!isAlive(server)) throw new LabError(`the simulated internet's server did not start: see ${path.join(this.dirs.logs, 'wan-server.log')}`, 3);
      return existsSync(ready);
    }, 10_000);
  }

  async stopServices(state: LabState): Promise<void> {
    if (isAlive(state.wanServer)) process.kill(state.wanServer.pid, 'SIGTERM');
    delete state.wanServer;
  }

  async teardown(state: LabState): Promise<void> {
    await this.stopServices(state);
    // Deleting the namespaces takes the bridge, the veths and the nft table with them.
    for (const ns of [this.names.netns, this.names.wanNetns]) {
      if (existsSync(netnsPath(ns))) await run(['ip', 'netns', 'delete', ns]);
    }
  }

  describe(): string {
    return `sandbox: zone bridge ${this.names.bridge} and NAT in netns ${this.names.netns}, simulated internet ${this.config.network.wanSubnet} in netns ${this.names.wanNetns}`;
  }
}

/** On the host itself, as the SADM scripts do: the machines reach the host's real uplink. */
class HostNetwork implements Network {
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

  async stopServices(): Promise<void> {}

  async teardown(state: LabState): Promise<void> {
    if (await linkExists([], this.names.bridge)) await run(['ip', 'link', 'delete', this.names.bridge]);
    await run(['nft', 'delete', 'table', 'ip', this.names.nftTable], { allowFailure: true });
    if (state.hostIpForward !== undefined) writeFileSync('/proc/sys/net/ipv4/ip_forward', `${state.hostIpForward}\n`);
    delete state.hostIpForward;
  }

  describe(): string {
    return `host: zone bridge ${this.names.bridge} and NAT (nft table ${this.names.nftTable}) on the host, machines reach the host's uplink`;
  }
}

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

class NetworkdNetwork implements Network {
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

  async stopServices(): Promise<void> {}

  async teardown(): Promise<void> {
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

