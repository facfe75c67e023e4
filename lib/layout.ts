import path from 'node:path';
import type { LabConfig } from './config/schema.js';

/**
 * Every name the lab gives to something on the host, in one place. All carry the lab's
 * name, so that two labs never collide and `lab destroy` can find what belongs to a lab.
 */
export interface LabNames {
  /** The lab's own name (cgroups: lab.<name>). */
  labName: string;
  /** Sandbox mode: the namespace that holds the zone bridge and the NAT. */
  netns: string;
  /** Sandbox mode: the namespace that plays the internet. */
  wanNetns: string;
  /** The nftables table holding the lab's NAT (in the lab's netns, or on the host). */
  nftTable: string;
  bridge: string;
  /** The machine name given to systemd-nspawn for a lab machine. */
  nspawnName(machine: string): string;
}

export function labNames(config: LabConfig): LabNames {
  return {
    labName: config.name,
    netns: `lab-${config.name}`,
    wanNetns: `lab-${config.name}-wan`,
    nftTable: `lab_${config.name.replaceAll('-', '_')}`,
    bridge: `vz-${config.zone.name}`,
    nspawnName: (machine) => `${config.name}-${machine}`,
  };
}

export interface LabDirs {
  /** Everything of this lab on the host. */
  state: string;
  /** The btrfs pool (mounted loopback image) or the copy-mode directory. */
  pool: string;
  poolImage: string;
  logs: string;
  stateFile: string;
  lockFile: string;
  /** Machines a running command froze (see state/frozen.ts). */
  frozenFile: string;
  /** Where machine roots are, inside the pool. */
  machinesDir: string;
  /** Roots of machines, snapshots and images, inside the pool. */
  machineRoot(machine: string): string;
  snapshotsOf(machine: string): string;
  snapshot(machine: string, stage: string, key: string): string;
  /** Checkpoints of the whole lab: one directory each, a read-only root per machine inside. */
  checkpointsDir: string;
  /** Where lab cache pull receives snapshots before they go into place; only while it runs. */
  cacheStaging: string;
  stageLog(machine: string, stage: string): string;
  consoleLog(machine: string): string;
  /** The base image's build (debootstrap's output), or where it was imported from. */
  imageLog: string;
  /** A diskless machine's own identity (hostname, machine-id, networkd files...), bound read-only over the root it shares. */
  identityDir(machine: string): string;
  /** The lab's SSH key pair (the private key; `.pub` beside it): the controller's way into machines. */
  sshKey: string;
  /** What the controller's stages use: lab's inventory, SSH config, known hosts, SSH's control sockets. */
  controllerDir: string;
}

export function labDirs(config: LabConfig): LabDirs {
  const state = path.join(config.stateDir, config.name);
  const pool = path.join(state, 'pool');
  return {
    state,
    pool,
    poolImage: path.join(state, 'pool.img'),
    logs: path.join(state, 'logs'),
    stateFile: path.join(state, 'state.json'),
    lockFile: path.join(state, 'lock'),
    frozenFile: path.join(state, 'frozen.json'),
    machinesDir: path.join(pool, 'machines'),
    machineRoot: (machine) => path.join(pool, 'machines', machine),
    snapshotsOf: (machine) => path.join(pool, 'snapshots', machine),
    snapshot: (machine, stage, key) => path.join(pool, 'snapshots', machine, `${stage}@${key}`),
    checkpointsDir: path.join(pool, 'checkpoints'),
    cacheStaging: path.join(pool, 'cache-pull.partial'),
    stageLog: (machine, stage) => path.join(state, 'logs', machine, `${stage}.log`),
    consoleLog: (machine) => path.join(state, 'logs', machine, 'console.log'),
    imageLog: path.join(state, 'logs', 'image.log'),
    identityDir: (machine) => path.join(state, 'diskless', machine),
    sshKey: path.join(state, 'ssh', 'id_ed25519'),
    controllerDir: path.join(state, 'controller'),
  };
}
