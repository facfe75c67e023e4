import { existsSync } from 'node:fs';
import path from 'node:path';
import { HostError } from '../errors.js';

/** A host command a driver runs, and the Debian package that has it. */
export interface Tool {
  command: string;
  debianPackage: string;
  why: string;
}

export const SETPRIV_TOOL: Tool = { command: 'setpriv', debianPackage: 'util-linux', why: 'runs tcpdump, the link relay and qemu with only the capabilities they need' };

/** The command's path on PATH (what `run` will execute), or undefined. */
export function findCommand(command: string): string | undefined {
  const dirs = (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').filter(Boolean);
  return dirs.map((dir) => path.join(dir, command)).find((file) => existsSync(file));
}

/** Each tool once, in the order the drivers named them. */
export function uniqueTools(tools: readonly Tool[]): Tool[] {
  return tools.filter((tool, i) => tools.findIndex((t) => t.command === tool.command) === i);
}

/** Fails with the exact install command when a tool is missing, and when not root. */
export function assertHostReady(tools: readonly Tool[], action: string): void {
  if (process.getuid?.() !== 0) {
    throw new HostError(
      `lab ${action} must run as root: it creates network namespaces, bridges, nftables rules, btrfs subvolumes and containers`,
      `run it with sudo`,
    );
  }
  const missing = uniqueTools(tools).filter((tool) => !findCommand(tool.command));
  if (missing.length > 0) {
    const packages = [...new Set(missing.map((t) => t.debianPackage))].join(' ');
    throw new HostError(
      `missing host tools: ${missing.map((t) => `${t.command} (${t.why})`).join(', ')}`,
      `install them with: apt-get install -y ${packages}`,
    );
  }
}
