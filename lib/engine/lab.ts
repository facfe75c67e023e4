import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { listeningTcpPorts, publishedPorts } from '../network/ports.js';
import path from 'node:path';
import { loadConfig, type LoadOptions } from '../config/load.js';
import { topologyOf } from '../config/topology.js';
import { CONTROLLER_TOOLS } from '../controller/ssh.js';
import type { HostDriver } from '../driver.js';
import { HostError, UsageError } from '../errors.js';
import { backendsOf, memoryShares } from './backends.js';
import type { BareLab, Lab } from './lab-types.js';
import { assertHostReady, type Tool } from '../host/prereq.js';
import { hostProfile } from '../host/profile.js';
import { createImage } from '../image/create.js';
import { readHostDistribution } from '../image/mirror.js';
import { labDirs, labNames } from '../layout.js';
import { createNetwork } from '../network/create.js';
import { LinkFaults } from '../network/faults.js';
import { PackageProxy } from '../network/package-proxy.js';
import { packageMirrors, packageProxyAddresses } from '../network/package-proxy-policy.js';
import { privateDir } from '../paths.js';
import { LinkRelays } from '../network/relay.js';
import { NosuidBinds } from '../host/nosuid-binds.js';
import { createRuntime } from '../runtime/create.js';
import { BuildSteps } from '../runtime/build-steps.js';
import { canInspectDisks } from '../vm/disk.js';
import { QemuVms } from '../vm/qemu.js';
import { thawAbandoned } from '../state/frozen.js';
import { createStorage } from '../storage/create.js';

export async function openLab(options: LoadOptions): Promise<Lab> {
  const bare = await openBareLab(options);
  const { loadLab } = await import('../stages/load.js');
  return { ...bare, loaded: await loadLab(bare.config, bare.topology, bare.configFile) };
}

/** Opens the lab without loading its stage modules (nor the TypeScript loader they may need). */
export async function openBareLab(options: LoadOptions): Promise<BareLab> {
  const { config, file } = await loadConfig(options);
  const names = labNames(config);
  const dirs = labDirs(config);
  const profile = hostProfile(config);
  const topology = topologyOf(config);
  const network = createNetwork(config, topology, names, dirs, profile);
  const host = readHostDistribution();
  // The one thing opening a lab may do to the host: undo a freeze whose command was killed, so that no
  // command meets machines that answer nothing.
  const thawed = thawAbandoned(dirs.frozenFile);
  if (thawed) process.stderr.write(`lab: ${thawed}\n`);
  return {
    config,
    configFile: file,
    names,
    dirs,
    image: createImage(config, host),
    storage: createStorage(config, dirs),
    network,
    profile,
    topology,
    runtime: createRuntime(profile, names, dirs, network, config, topology),
    vms: new QemuVms({
      labName: config.name,
      machines: config.machines,
      topology,
      netnsPrefix: network.netnsPrefix,
      socketsDir: path.join(dirs.state, 'vm'),
      consoleLog: dirs.consoleLog,
      nspawnName: names.nspawnName,
    }),
    backendOf: backendsOf(config),
    buildSteps: new BuildSteps([dirs.machinesDir, path.join(dirs.pool, 'images')], config.name),
    faults: new LinkFaults(
      { dir: path.join(dirs.state, 'faults'), netnsPrefix: network.netnsPrefix, nftTable: names.nftTable, bridges: topology.networks.map((n) => n.bridge) },
      new LinkRelays({ labName: config.name, netnsPrefix: network.netnsPrefix, dir: path.join(dirs.state, 'relays') }),
    ),
    nosuidBinds: new NosuidBinds(dirs.state),
    packageCache: path.join(config.cacheDir, 'packages', `${config.image.distribution}-${config.image.suite}`),
    packageProxy: new PackageProxy({
      addresses: packageProxyAddresses(config, topology),
      mirrors: packageMirrors(config.image, host),
      cacheDir: path.join(config.cacheDir, 'packages', 'proxy'),
      stateDir: dirs.state,
      logFile: path.join(dirs.logs, 'package-proxy.log'),
      netnsPrefix: network.netnsPrefix,
      off: config.packages.proxy ? undefined : 'packages.proxy: false in the config',
    }),
  };
}

/** The drivers that make things on the host, in the order `lab destroy` removes them: build steps and machines (then their cgroups) before the nosuid binds they used, link faults (and relays) and the package proxy before the network they sit on, the pool last. */
export function hostDrivers(lab: BareLab): HostDriver[] {
  return [lab.buildSteps, lab.runtime, lab.vms, lab.nosuidBinds, lab.faults, lab.packageProxy, lab.network, lab.storage];
}

/** Every host tool the lab needs, each with the driver's reason. */
export function labTools(lab: BareLab, options: { image: boolean }): Tool[] {
  return [...hostDrivers(lab).flatMap((d) => d.tools()), ...(options.image ? lab.image.tools() : []), ...(lab.config.controller.length > 0 ? CONTROLLER_TOOLS : [])];
}

/**
 * What a command that runs machines needs from the host, before it touches anything: a runtime
 * the host can give and, when it builds, an image source it can give (exit 2, saying what to use
 * instead); then root and the tools (exit 3, with the packages to install).
 */
export async function assertUsable(lab: BareLab, action: string, options: { image: boolean }): Promise<void> {
  if (lab.profile.problem) throw new UsageError(lab.profile.problem.message, lab.profile.problem.hint);
  if (options.image) await lab.image.check();
  assertPortsFree(lab);
  // Without qemu-img, each disk is looked at when its vm starts.
  if (canInspectDisks()) for (const vm of lab.vms.names) await lab.vms.assertDisk(vm);
  assertHostReady(labTools(lab, options), action);
  assertMemory(memoryShares(lab.config.machines, lab.backendOf));
}

/** Host mode publishes on the host's own addresses: a port something already listens on there is refused (exit 2). */
function assertPortsFree(lab: BareLab): void {
  const ports = publishedPorts(lab.config, lab.topology);
  if (ports.length === 0 || lab.config.network.mode !== 'host') return;
  if (lab.profile.networkd) throw new UsageError('machines publish ports: that needs sandbox mode, or host mode with nftables (this host uses the networkd profile)');
  const listening = listeningTcpPorts(['/proc/net/tcp', '/proc/net/tcp6'].filter((f) => existsSync(f)).map((f) => readFileSync(f, 'utf8')));
  const taken = ports.find((p) => p.protocol === 'tcp' && listening.has(p.hostPort));
  if (taken) throw new UsageError(`machine ${taken.machine} publishes TCP port ${taken.hostPort}, and something on the host already listens on it`, `free the port, or publish another hostPort`);
}

/** A lab too big for the host's memory is refused before it boots (exit 3), with the figures: `shares` by backend (memoryShares). */
export function assertMemory(shares: readonly { mib: number; said: string }[], meminfo = readFileSync('/proc/meminfo', 'utf8')): void {
  const availableKib = Number(/^MemAvailable:\s+(\d+) kB/m.exec(meminfo)?.[1] ?? NaN);
  if (Number.isNaN(availableKib)) return;
  const needMib = shares.reduce((sum, share) => sum + share.mib, 0);
  const availableMib = Math.floor(availableKib / 1024);
  if (availableMib < needMib) {
    throw new HostError(
      `the lab needs about ${needMib} MiB of memory for ${shares.map((share) => share.said).join(' and ')}, and the host has ${availableMib} MiB available`,
      'stop other labs (lab down), or run fewer machines',
    );
  }
}

/**
 * The lab's directories, closed to other users: the state directory holds the pool (every
 * machine's files, private keys included) and logs; the shared cache holds the install lock,
 * which anyone who can open it could hold. Labs made before this are closed again here.
 */
export function ensureDirs(lab: BareLab): void {
  for (const dir of [lab.dirs.state, lab.dirs.logs, lab.config.cacheDir]) privateDir(dir);
  mkdirSync(lab.packageCache, { recursive: true, mode: 0o700 });
}
