import { readFileSync, writeFileSync } from 'node:fs';

/**
 * Kernel limits that dozens of machines share, since they run as host root without a user
 * namespace: each booted systemd takes about 8 inotify instances (for its .path units, journald,
 * udev rules) and a few thousand watches; each machine has a neighbour entry on the bridge.
 */
export interface HostLimit {
  sysctl: string;
  /** What the lab needs at its size. */
  need: number;
  why: string;
}

const INOTIFY_INSTANCES_PER_MACHINE = 16; // twice what an idle Debian machine takes: package installs, services
const INOTIFY_WATCHES_PER_MACHINE = 8192;
const NEIGHBOURS_PER_MACHINE = 4;
/** What the host's own processes keep, beyond the lab's share. */
const HOST_SHARE = { instances: 128, watches: 65_536, neighbours: 1024 };

export function requiredLimits(machines: number): HostLimit[] {
  return [
    { sysctl: 'fs.inotify.max_user_instances', need: HOST_SHARE.instances + INOTIFY_INSTANCES_PER_MACHINE * machines, why: `about ${INOTIFY_INSTANCES_PER_MACHINE} inotify instances per machine (systemd's .path units, journald)` },
    { sysctl: 'fs.inotify.max_user_watches', need: HOST_SHARE.watches + INOTIFY_WATCHES_PER_MACHINE * machines, why: 'inotify watches of every machine' },
    { sysctl: 'net.ipv4.neigh.default.gc_thresh3', need: HOST_SHARE.neighbours + NEIGHBOURS_PER_MACHINE * machines, why: 'neighbour entries on the bridges' },
  ];
}

const sysctlPath = (name: string) => `/proc/sys/${name.replaceAll('.', '/')}`;

export function readLimit(name: string): number | undefined {
  try {
    return Number(readFileSync(sysctlPath(name), 'utf8').trim());
  } catch {
    return undefined;
  }
}

export interface LimitCheck extends HostLimit {
  current?: number;
}

export function checkLimits(machines: number): LimitCheck[] {
  return requiredLimits(machines).map((limit) => ({ ...limit, current: readLimit(limit.sysctl) }));
}

/** Raises what is below the lab's needs (never lowers anything); returns one line per change. */
export function raiseLimits(machines: number): string[] {
  const changes: string[] = [];
  for (const limit of checkLimits(machines)) {
    if (limit.current === undefined || limit.current >= limit.need) continue;
    writeFileSync(sysctlPath(limit.sysctl), `${limit.need}\n`);
    changes.push(`raised ${limit.sysctl} from ${limit.current} to ${limit.need} for ${machines} machines (${limit.why})`);
  }
  return changes;
}

/**
 * How many stages build at once (offline: package installs, scripts in a stopped root, snapshots):
 * two a core, so that one's disk waits overlap another's work. All at once, 199 system stages took
 * 3.7 s each against 0.2 s for 25, and slowed the build of gw, which every DHCP machine waits for.
 */
export function buildConcurrency(cores: number): number {
  return Math.max(2, cores * 2);
}

/** How many machines boot at once: enough to overlap their waits, few enough for the host's cores. */
export function bootConcurrency(cores: number, machines: number, configured?: number): number {
  if (configured !== undefined) return Math.max(1, Math.min(configured, machines));
  return Math.max(1, Math.min(machines, Math.max(4, cores * 4)));
}
