import { existsSync, readFileSync } from 'node:fs';
import type { LabConfig } from '../config/schema.js';
import { UsageError } from '../errors.js';
import { findCommand } from './prereq.js';

export type RuntimeKind = 'nspawn' | 'machinectl';

export interface HostProfile {
  runtime: RuntimeKind;
  /** Why this runtime: what was found on the host, or that the config asked for it. */
  why: string;
  systemdPid1: boolean;
  machined: boolean;
  networkd: boolean;
  /** Set when the runtime asked for cannot run on this host: commands that need it fail with it (exit 2). */
  problem?: { message: string; hint: string };
}

function pid1Name(): string {
  try {
    return readFileSync('/proc/1/comm', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/** What the host offers: systemd as PID 1, machined, networkd (each a running daemon, not only installed). */
export function probeHost(): Omit<HostProfile, 'runtime' | 'why'> & { pid1: string } {
  const pid1 = pid1Name();
  const systemdPid1 = pid1 === 'systemd' && existsSync('/run/systemd/system');
  return {
    pid1,
    systemdPid1,
    machined: systemdPid1 && Boolean(findCommand('machinectl')) && existsSync('/run/systemd/machines'),
    networkd: systemdPid1 && existsSync('/run/systemd/netif'),
  };
}

/**
 * Picks the runtime (config `runtime`, or --runtime). Asking for machinectl in sandbox mode is a
 * config error; asking for it on a host without machined is a `problem` for the commands that
 * need machines, so that doctor and destroy still work. `host`: what the host offers (probed).
 */
export function hostProfile(config: LabConfig, host: ReturnType<typeof probeHost> = probeHost()): HostProfile {
  const { pid1, ...offers } = host;
  if (config.runtime === 'machinectl') {
    if (config.network.mode !== 'host') {
      throw new UsageError('runtime machinectl: machined runs machines on the host\'s own network, so it needs network.mode host', 'set network.mode: host, or use runtime nspawn (sandbox mode)');
    }
    if (!host.machined) {
      const missing = !host.systemdPid1 ? `PID 1 is '${pid1}', not systemd, so machined cannot run` : 'systemd-machined is not running (apt-get install systemd-container)';
      const problem = { message: `runtime machinectl: ${missing}`, hint: 'use runtime nspawn (lab starts systemd-nspawn itself), or leave runtime on auto' };
      return { ...offers, runtime: 'machinectl', why: `asked for by the config, but ${missing}`, problem };
    }
    return { ...offers, runtime: 'machinectl', why: 'asked for by the config' };
  }
  if (config.runtime === 'nspawn') return { ...offers, runtime: 'nspawn', why: 'asked for by the config' };
  if (config.machines.some((m) => m.kind === 'diskless')) {
    return { ...offers, runtime: 'nspawn', why: "the lab has diskless machines, which lab's own systemd-nspawn boots (read-only, on another machine's directory)" };
  }
  if (host.machined && config.network.mode === 'sandbox') {
    return { ...offers, runtime: 'nspawn', why: 'machined runs, but sandbox mode keeps the zone in a namespace of its own, where machined cannot reach: lab starts systemd-nspawn itself' };
  }
  return host.machined
    ? { ...offers, runtime: 'machinectl', why: 'systemd is PID 1 and machined runs: machines are machined machines (machinectl list)' }
    : { ...offers, runtime: 'nspawn', why: `${host.systemdPid1 ? 'machined is not running' : `PID 1 is '${pid1}', not systemd`}: lab starts systemd-nspawn itself (no machined)` };
}
