import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { HostDriver } from '../driver.js';
import { InfraError } from '../errors.js';
import { run } from '../exec.js';
import { findProcesses } from '../host/procs.js';
import { packageRoot } from '../paths.js';
import { endProcess, isAlive, refOf } from '../state/process.js';
import type { LabState, ProcessRef } from '../state/state.js';
import { FAST, poll } from '../wait.js';
import { PACKAGE_PROXY_PORT, type PackageProxySettings } from './package-proxy-policy.js';

const SERVER_SCRIPT = path.join(packageRoot, 'dist', 'lib', 'network', 'package-proxy-server.js');
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5000;

export interface PackageProxyOptions {
  /** Where machines reach it (empty: no machine needs it, or `packages.proxy: false`). */
  addresses: string[];
  mirrors: string[];
  /** The shared cache it keeps files in, for every lab. */
  cacheDir: string;
  /** The lab's state directory: its settings and ready file are there, which name the lab in its argv. */
  stateDir: string;
  logFile: string;
  /** Runs a command in the namespace of the lab's networks (empty in host mode). */
  netnsPrefix: readonly string[];
  /** Why there is none, when `addresses` is empty. */
  off?: string;
}

/**
 * The lab's package proxy (package-proxy-server.ts): started by `lab up` and restores when a
 * machine needs it, stopped by `lab down` and `lab destroy`, by pid. It listens on the lab's host
 * addresses (in the lab's namespace in sandbox mode) and connects out from lab's own namespace, the
 * host's network. Found by its settings file, in the lab's state directory, in its argv.
 */
export class PackageProxy implements HostDriver {
  private readonly settingsFile: string;
  private readonly readyFile: string;

  constructor(private readonly options: PackageProxyOptions) {
    this.settingsFile = path.join(options.stateDir, 'package-proxy.json');
    this.readyFile = path.join(options.stateDir, 'package-proxy.ready');
  }

  tools() {
    return [];
  }

  private settings(): PackageProxySettings {
    const { addresses, mirrors, cacheDir, logFile } = this.options;
    return { addresses, port: PACKAGE_PROXY_PORT, mirrors, cacheDir, readyFile: this.readyFile, logFile };
  }

  /** Starts it unless it runs with these settings already; a proxy with others (mirrors, addresses changed) is replaced. */
  async start(state: LabState): Promise<void> {
    if (this.options.addresses.length === 0) return this.stop(state);
    const settings = `${JSON.stringify(this.settings(), null, 2)}\n`;
    if (isAlive(state.packageProxy) && existsSync(this.settingsFile) && readFileSync(this.settingsFile, 'utf8') === settings) return;
    await this.stop(state);
    mkdirSync(this.options.cacheDir, { recursive: true, mode: 0o700 });
    writeFileSync(this.settingsFile, settings);
    // Sockets made in the lab's namespace, the proxy started back in this one (see the server's `listen`).
    const hostNetns = this.options.netnsPrefix.length > 0 ? [`/proc/${process.pid}/ns/net`] : [];
    const listen = await run([...this.options.netnsPrefix, process.execPath, SERVER_SCRIPT, 'listen', this.settingsFile, ...hostNetns], { timeout: START_TIMEOUT_MS });
    const proxy = refOf(Number(listen.stdout.trim()));
    if (!proxy) throw new InfraError(`the package proxy ended as it started: see ${this.options.logFile}`);
    state.packageProxy = proxy;
    await poll('the package proxy to serve', () => {
      if (!isAlive(proxy)) throw new InfraError(`the package proxy ended as it started: see ${this.options.logFile}`);
      return existsSync(this.readyFile);
    }, { within: START_TIMEOUT_MS, every: FAST });
  }

  /** Its process, and any other with its settings file (a command killed before it recorded one). */
  private processes(state: LabState): ProcessRef[] {
    const found = findProcesses((argv) => argv.includes(this.settingsFile)).map((p) => p.process);
    return isAlive(state.packageProxy) && !found.some((p) => p.pid === state.packageProxy!.pid) ? [state.packageProxy, ...found] : found;
  }

  async stop(state: LabState): Promise<void> {
    for (const proxy of this.processes(state)) await endProcess(proxy, 'the package proxy', STOP_TIMEOUT_MS);
    delete state.packageProxy;
    rmSync(this.readyFile, { force: true });
  }

  async leftovers(state: LabState): Promise<string[]> {
    return this.processes(state).map((p) => `package proxy (pid ${p.pid})`);
  }

  async destroy(state: LabState): Promise<void> {
    await this.stop(state);
  }

  describe(): string {
    const { addresses, mirrors, cacheDir, off } = this.options;
    if (addresses.length === 0) return `package proxy: none (${off ?? 'no machine reaches a host address'})`;
    return `package proxy on ${addresses.map((a) => `${a}:${PACKAGE_PROXY_PORT}`).join(', ')}, forwarding only to ${mirrors.join(', ') || 'no mirror'}, cache ${cacheDir}`;
  }
}
