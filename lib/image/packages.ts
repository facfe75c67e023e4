import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BuildSteps } from '../runtime/build-steps.js';

/** A distribution's package manager, as lab drives it inside a stopped machine's root. */
export interface PackageManager {
  readonly name: 'apt' | 'pacman';
  /** Where it keeps downloaded packages inside a root: the shared package cache is bound there. */
  readonly cacheDir: string;
  install(packages: readonly string[]): string[];
  /**
   * Where downloading apart from installing is safe: `download` fills the shared cache (holding
   * its lock), then `installDownloaded` installs from it alone (no lock: roots install side by side).
   */
  readonly split?: { download(packages: readonly string[]): string[]; installDownloaded(packages: readonly string[]): string[] };
  /** Brings the package lists up to date; run once when an install fails, then the install again. */
  refresh(): string[];
  /** Upgrades every installed package from the (refreshed) lists: lab image upgrade. */
  upgrade(): string[];
  /** What lists the installed packages with their versions (a file, or a directory of one entry each): it changes when an upgrade did something. */
  readonly database: string;
  /** Written into the base image: how stages' installs behave. */
  readonly configFiles: readonly { path: string; content: string }[];
}

export const apt: PackageManager = {
  name: 'apt',
  cacheDir: '/var/cache/apt/archives',
  install: (packages) => ['apt-get', 'install', '-y', '-q', '-o', 'Dpkg::Options::=--force-confold', ...packages],
  split: {
    download: (packages) => ['apt-get', 'install', '--download-only', '-y', '-q', ...packages],
    // Nothing to fetch, so nothing written to the shared cache: its lock (apt's, and lab's) is not needed.
    installDownloaded: (packages) => ['apt-get', 'install', '--no-download', '-y', '-q', '-o', 'Debug::NoLocking=true', '-o', 'Dpkg::Options::=--force-confold', ...packages],
  },
  refresh: () => ['apt-get', 'update', '-q'],
  upgrade: () => ['apt-get', 'dist-upgrade', '-y', '-q', '-o', 'Dpkg::Options::=--force-confold'],
  database: '/var/lib/dpkg/status',
  configFiles: [
    {
      path: '/etc/apt/apt.conf.d/90lab',
      // Keep downloads: the cache is the host's shared one, bound in while a stage runs.
      content: 'APT::Install-Recommends "false";\nBinary::apt::APT::Keep-Downloaded-Packages "true";\n',
    },
    {
      path: '/etc/dpkg/dpkg.cfg.d/90lab',
      // No fsync per file: a stage interrupted by a crash is built again from its snapshot anyway.
      content: 'force-unsafe-io\n',
    },
  ],
};

export const pacman: PackageManager = {
  name: 'pacman',
  cacheDir: '/var/cache/pacman/pkg',
  install: (packages) => ['pacman', '-S', '--noconfirm', '--needed', ...packages],
  // Arch supports no partial upgrades: refreshing the lists means upgrading with them.
  refresh: () => ['pacman', '-Syu', '--noconfirm'],
  upgrade: () => ['pacman', '-Syu', '--noconfirm'],
  database: '/var/lib/pacman/local',
  configFiles: [],
};

/** The package manager a root holds (a tarball image can be any distribution). */
export function detectPackageManager(root: string): PackageManager | undefined {
  if (existsSync(path.join(root, 'usr/bin/apt-get'))) return apt;
  if (existsSync(path.join(root, 'usr/bin/pacman'))) return pacman;
  return undefined;
}

export interface InstallTarget {
  root: string;
  nspawnName: string;
  logFile: string;
  /** Where the log stops growing; default: run's. */
  logLimitBytes?: number;
  /** The host's shared cache of downloaded packages for this image's distribution. */
  packageCache: string;
}

const INSTALL_TIMEOUT_MS = 15 * 60_000;

/** Runs the package manager's commands in a root with the shared cache bound and its lock held: installs and upgrades. */
export async function withPackageCache(runner: BuildSteps, pm: PackageManager, target: InstallTarget, commands: readonly string[][]): Promise<void> {
  const lock = path.join(target.packageCache, '.lab-install.lock');
  if (!existsSync(lock)) writeFileSync(lock, '', { mode: 0o600 });
  for (const argv of commands) {
    await runner.run(target.root, target.nspawnName, argv, { logFile: target.logFile, logLimitBytes: target.logLimitBytes, timeout: INSTALL_TIMEOUT_MS, binds: [{ source: target.packageCache, target: pm.cacheDir }], exclusive: lock });
  }
}

/** Installs packages into a stopped machine's root, from its mirror through the host's network. */
export async function installPackages(runner: BuildSteps, pm: PackageManager, target: InstallTarget, packages: readonly string[]): Promise<void> {
  if (packages.length === 0) return;
  const lock = path.join(target.packageCache, '.lab-install.lock');
  if (!existsSync(lock)) writeFileSync(lock, '', { mode: 0o600 }); // flock would make it readable by all, and anyone who can open it can hold it
  const options = {
    logFile: target.logFile,
    logLimitBytes: target.logLimitBytes,
    timeout: INSTALL_TIMEOUT_MS,
    binds: [{ source: target.packageCache, target: pm.cacheDir }],
    // Package managers lock the shared cache: one download (or install) at a time, the others queue.
    exclusive: lock,
  };
  const fetch = pm.split?.download ?? pm.install;
  const first = await runner.run(target.root, target.nspawnName, fetch(packages), { ...options, allowFailure: true });
  if (first.exitCode !== 0) {
    // The image's package lists may be older than the mirror: refresh them once and retry.
    await runner.run(target.root, target.nspawnName, pm.refresh(), options);
    await runner.run(target.root, target.nspawnName, fetch(packages), options);
  }
  if (pm.split) await runner.run(target.root, target.nspawnName, pm.split.installDownloaded(packages), { ...options, exclusive: undefined });
}
