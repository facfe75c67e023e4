import { existsSync } from 'node:fs';
import path from 'node:path';
import type { LabConfig } from '../config/schema.js';
import { HostError } from '../errors.js';

export interface Tool {
  command: string;
  debianPackage: string;
  why: string;
}

/** The host tools a lab with this config needs, and the Debian package of each. */
export function requiredTools(config: LabConfig): Tool[] {
  const tools: Tool[] = [
    { command: 'systemd-nspawn', debianPackage: 'systemd-container', why: 'runs the machines' },
    { command: 'nft', debianPackage: 'nftables', why: 'NAT for the zone' },
    { command: 'ip', debianPackage: 'iproute2', why: 'bridge, veths and namespaces' },
    { command: 'nsenter', debianPackage: 'util-linux', why: 'runs commands inside machines and namespaces' },
    { command: 'sysctl', debianPackage: 'procps', why: 'turns on forwarding for the zone' },
    { command: 'tar', debianPackage: 'tar', why: 'caches base images' },
  ];
  if (config.image.source === 'debootstrap') tools.push({ command: 'debootstrap', debianPackage: 'debootstrap', why: 'builds the base image' });
  if (config.storage.kind === 'btrfs') {
    tools.push({ command: 'btrfs', debianPackage: 'btrfs-progs', why: 'snapshots of stages' });
    tools.push({ command: 'mkfs.btrfs', debianPackage: 'btrfs-progs', why: 'the loopback pool' });
  }
  return tools;
}

export function findCommand(command: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin']);
  return dirs.map((dir) => path.join(dir, command)).find((file) => existsSync(file));
}

export function missingTools(config: LabConfig): Tool[] {
  return requiredTools(config).filter((tool) => !findCommand(tool.command));
}

/** Fails with the exact install command when something is missing, and when not root. */
export function assertHostReady(config: LabConfig, action: string): void {
  if (process.getuid?.() !== 0) {
    throw new HostError(
      `lab ${action} must run as root: it creates network namespaces, bridges, nftables rules, btrfs subvolumes and containers`,
      `run it with sudo`,
    );
  }
  const missing = missingTools(config);
  if (missing.length > 0) {
    const packages = [...new Set(missing.map((t) => t.debianPackage))].join(' ');
    throw new HostError(
      `missing host tools: ${missing.map((t) => `${t.command} (${t.why})`).join(', ')}`,
      `install them with: apt-get install -y ${packages}`,
    );
  }
}
