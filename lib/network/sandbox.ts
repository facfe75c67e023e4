import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { nthAddress, parseSubnet } from '../config/ip.js';
import type { LabConfig } from '../config/schema.js';
import type { Topology } from '../config/topology.js';
import { InfraError } from '../errors.js';
import { run, spawnDetached } from '../exec.js';
import { findProcesses } from '../host/procs.js';
import type { Tool } from '../host/prereq.js';
import type { LabDirs, LabNames } from '../layout.js';
import { packageRoot } from '../paths.js';
import { isAlive, refOf, signalProcess } from '../state/process.js';
import type { LabState, ProcessRef } from '../state/state.js';
import { FAST, poll } from '../wait.js';
import { publishedPorts, publishRules } from './ports.js';
import { inNetns, IP_TOOL, linkExists, natRuleset, type Network, netnsPath, NFT_TOOL, setupBridges } from './network.js';

const UPLINK = 'uplink';
const WAN = 'wan';
const WAN_SERVER_PORT = 80;

/** Hermetic: zone, NAT and a stand-in internet in namespaces the lab owns; no packet leaves the machine. */
export class SandboxNetwork implements Network {
  readonly mode = 'sandbox' as const;
  readonly netnsPrefix: readonly string[];
  readonly internet: { address: string; uplinkAddress: string; port: number };
  private readonly wanPrefixLength: number;
  /** Written by the simulated internet's server once it listens; also how its process is found. */
  private readonly wanReady: string;

  constructor(
    private readonly config: LabConfig,
    private readonly topology: Topology,
    private readonly names: LabNames,
    private readonly dirs: LabDirs,
  ) {
    this.netnsPrefix = inNetns(names.netns);
    const wan = parseSubnet(config.network.wanSubnet);
    this.wanPrefixLength = wan.prefix;
    this.internet = { address: nthAddress(wan, 1), uplinkAddress: nthAddress(wan, 2), port: WAN_SERVER_PORT };
    this.wanReady = path.join(dirs.state, 'wan-server.ready');
  }

  tools(): Tool[] {
    return [IP_TOOL, NFT_TOOL, { command: 'nsenter', debianPackage: 'util-linux', why: 'enters the lab\'s namespaces' }, { command: 'sysctl', debianPackage: 'procps', why: 'turns on forwarding for the NAT' }];
  }

  async setup(state: LabState): Promise<void> {
    const { netns, wanNetns } = this.names;
    // The WAN server starts last: when it runs in existing namespaces, an earlier setup completed.
    // Published ports: DNAT on the lab's uplink address, from the simulated internet's side.
    const published = publishRules(publishedPorts(this.config, this.topology), { iifname: UPLINK, daddr: this.internet.uplinkAddress });
    if (existsSync(netnsPath(netns)) && existsSync(netnsPath(wanNetns)) && isAlive(state.wanServer)) {
      await this.applyNat(published); // the config may have changed the published ports
      return;
    }
    for (const ns of [netns, wanNetns]) if (!existsSync(netnsPath(ns))) await run(['ip', 'netns', 'add', ns]);
    const lab = this.netnsPrefix;
    const wan = inNetns(wanNetns);
    await run([...lab, 'ip', 'link', 'set', 'lo', 'up']);
    await run([...wan, 'ip', 'link', 'set', 'lo', 'up']);
    await setupBridges(lab, this.topology.networks);
    if (!(await linkExists(lab, UPLINK))) {
      await run([...lab, 'ip', 'link', 'add', UPLINK, 'type', 'veth', 'peer', 'name', WAN, 'netns', netnsPath(wanNetns)]);
    }
    await run([...lab, 'ip', 'address', 'replace', `${this.internet.uplinkAddress}/${this.wanPrefixLength}`, 'dev', UPLINK]);
    await run([...wan, 'ip', 'address', 'replace', `${this.internet.address}/${this.wanPrefixLength}`, 'dev', WAN]);
    await run([...lab, 'ip', 'link', 'set', UPLINK, 'up']);
    await run([...wan, 'ip', 'link', 'set', WAN, 'up']);
    await run([...lab, 'ip', 'route', 'replace', 'default', 'via', this.internet.address]);
    await run([...lab, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    await this.applyNat(published, { force: true });
    await this.startWanServer(state);
  }

  /**
   * Loads the NAT table when its rules differ from those loaded last (kept beside the lab's state):
   * on a lab already set up, restores and ups skip the command.
   */
  private async applyNat(published: readonly string[], options: { force?: boolean } = {}): Promise<void> {
    const ruleset = natRuleset(this.names.nftTable, this.topology.networks, published);
    const applied = path.join(this.dirs.state, 'nat.nft');
    if (!options.force && existsSync(applied) && readFileSync(applied, 'utf8') === ruleset) return;
    await run([...this.netnsPrefix, 'nft', '-f', '-'], { input: ruleset });
    writeFileSync(applied, ruleset);
  }

  private async startWanServer(state: LabState): Promise<void> {
    if (isAlive(state.wanServer)) return;
    rmSync(this.wanReady, { force: true });
    const script = path.join(packageRoot, 'dist', 'lib', 'network', 'wan-echo.js');
    const log = path.join(this.dirs.logs, 'wan-server.log');
    const pid = spawnDetached([...inNetns(this.names.wanNetns), process.execPath, script, this.internet.address, String(WAN_SERVER_PORT), this.wanReady], log);
    state.wanServer = refOf(pid);
    const server = state.wanServer;
    await poll("the simulated internet's server", () => {
      if (!isAlive(server)) throw new InfraError(`the simulated internet's server did not start: see ${log}`);
      return existsSync(this.wanReady);
    }, { within: 10_000, every: FAST });
  }

  /** The simulated internet's servers of this lab, also one its state lost track of. */
  private servers(state: LabState): ProcessRef[] {
    const found = findProcesses((argv) => argv.includes(this.wanReady)).map((p) => p.process);
    return isAlive(state.wanServer) && !found.some((p) => p.pid === state.wanServer!.pid) ? [state.wanServer, ...found] : found;
  }

  async stopServices(state: LabState): Promise<void> {
    for (const server of this.servers(state)) signalProcess(server.pid, 'SIGTERM');
    delete state.wanServer;
  }

  async leftovers(state: LabState): Promise<string[]> {
    const found = this.servers(state).map((p) => `simulated internet server (pid ${p.pid})`);
    for (const ns of [this.names.netns, this.names.wanNetns]) if (existsSync(netnsPath(ns))) found.push(`network namespace ${ns}`);
    return found;
  }

  async destroy(state: LabState): Promise<void> {
    await this.stopServices(state);
    // Deleting the namespaces takes the bridge, the veths and the nft table with them.
    for (const ns of [this.names.netns, this.names.wanNetns]) {
      if (existsSync(netnsPath(ns))) await run(['ip', 'netns', 'delete', ns]);
    }
  }

  describe(): string {
    const bridges = this.topology.networks.map((n) => `${n.bridge}${n.nat ? ' (NAT)' : n.router ? ` (routed by ${n.router})` : ''}`).join(', ');
    return `sandbox: bridges ${bridges} in netns ${this.names.netns}, simulated internet ${this.config.network.wanSubnet} in netns ${this.names.wanNetns}`;
  }
}
