import path from 'node:path';
import type { LabConfig } from '../config/schema.js';
import type { Topology, TopologyMachine } from '../config/topology.js';
import { securityMirror } from '../image/apt-sources.js';
import { chooseMirror, type HostDistribution } from '../image/mirror.js';

/**
 * What lab's package proxy lets through, purely: where each machine finds it, which mirrors it
 * forwards to, what it refuses and why, and what it keeps in the shared cache. The proxy process
 * (package-proxy-server.ts) and its driver (package-proxy.ts) both read it.
 */

/** apt-cacher-ng's port, which apt users know as the package proxy's. */
export const PACKAGE_PROXY_PORT = 3142;

/**
 * The host address a machine reaches the proxy at: the host's on a network the machine is on,
 * else the first NAT'ed network's (a machine on a routed network gets there through its router,
 * which must masquerade, as SADM's gw does: the host has no route back to a routed network).
 * Undefined when the proxy is off, for a vm (lab does not build its root), and for a machine
 * with neither (on isolated networks only).
 */
export function packageProxyAddress(config: LabConfig, topology: Topology, self: TopologyMachine): string | undefined {
  if (!config.packages.proxy || self.kind !== 'container') return undefined;
  const withHost = topology.networks.filter((n) => n.hostAddress !== undefined);
  const own = withHost.find((n) => self.interfaces.some((i) => i.network === n.name));
  const routed = self.interfaces.some((i) => i.defaultRoute) ? withHost.find((n) => n.nat) : undefined;
  return (own ?? routed)?.hostAddress;
}

/** Where the proxy listens: every address some machine reaches it at (none: the lab needs no proxy). */
export function packageProxyAddresses(config: LabConfig, topology: Topology): string[] {
  return [...new Set(topology.machines.map((m) => packageProxyAddress(config, topology, m)).filter((a): a is string => a !== undefined))].sort();
}

/**
 * The mirrors the proxy forwards to: the image's mirror (chosen as the image's is, see mirror.ts)
 * and, for Debian, the security mirror the host's apt sources name (what `lab image upgrade` adds
 * to the machines' sources). Nothing else is ever fetched.
 */
export function packageMirrors(image: LabConfig['image'], host: HostDistribution): string[] {
  if (image.distribution === 'arch') return []; // pacman has no proxy setting of lab's: its machines get none
  const mirror = chooseMirror(image.distribution, image.mirror, host).mirror;
  const security = image.distribution === 'debian' ? securityMirror(image.suite, host.aptSources) : undefined;
  return [...new Set([mirror, security].filter((m): m is string => m !== undefined).map((m) => m.replace(/\/+$/, '')))];
}

export type ProxyVerdict =
  | { allowed: true; url: URL; cacheable: boolean }
  | { allowed: false; status: 400 | 403 | 405; reason: string };

/** Files that never change once on a mirror: packages in its pool, index files named by their hash. */
const IMMUTABLE = /(^|\/)pool\/.+\.u?deb$|\/by-hash\/[A-Za-z0-9]+\/[0-9a-f]+$/;
/** What a cached file's path may hold: a pool or by-hash path as mirrors name them, nothing to escape. */
const PLAIN_PATH = /^\/[A-Za-z0-9._~+:/-]+$/;

/**
 * Whether a request a machine sent the proxy goes on: GET or HEAD, in proxy form (an absolute
 * http URL), to one of `mirrors` (same origin, under its path), without credentials. The URL is
 * parsed (WHATWG: dot segments resolved, the host lowercased) before it is compared, so
 * `http://deb.debian.org/debian/../other` is `/other`, refused. Nothing here resolves a name.
 */
export function judgeRequest(method: string, target: string, mirrors: readonly string[]): ProxyVerdict {
  const refuse = (status: 400 | 403 | 405, reason: string): ProxyVerdict => ({ allowed: false, status, reason });
  if (method === 'CONNECT') return refuse(405, 'CONNECT (tunnels) is refused: the proxy forwards plain http requests to the mirrors only');
  if (method !== 'GET' && method !== 'HEAD') return refuse(405, `${method} is refused: the proxy forwards GET and HEAD only`);
  if (!/^http:\/\//i.test(target)) return refuse(400, `not a proxy request (an absolute http:// URL): ${target.slice(0, 200)}`);
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return refuse(400, `not a URL: ${target.slice(0, 200)}`);
  }
  if (url.username || url.password) return refuse(403, 'a URL with credentials is refused');
  const mirror = mirrors.map((m) => new URL(m)).find((m) => m.protocol === url.protocol && m.host === url.host && underPath(url.pathname, m.pathname));
  if (!mirror) return refuse(403, `${url.origin}${url.pathname} is not a mirror of this lab (it forwards to ${mirrors.join(', ') || 'none'})`);
  return { allowed: true, url, cacheable: method === 'GET' && url.search === '' && PLAIN_PATH.test(url.pathname) && IMMUTABLE.test(url.pathname) };
}

function underPath(pathname: string, base: string): boolean {
  const prefix = base.replace(/\/+$/, '');
  return prefix === '' || pathname === prefix || pathname.startsWith(`${prefix}/`);
}

/** Where a cacheable URL's file is kept in the shared cache: `<cache>/<host>/<path>`, never outside it. */
export function cachedFile(cacheRoot: string, url: URL): string {
  const file = path.join(cacheRoot, url.host, url.pathname);
  const relative = path.relative(cacheRoot, file);
  if (relative.startsWith('..') || path.isAbsolute(relative)) throw new Error(`cache path out of the cache: ${url.href}`);
  return file;
}

/** What the proxy process is given: where to listen (fds handed to it), where to forward, cache and files. */
export interface PackageProxySettings {
  addresses: string[];
  port: number;
  mirrors: string[];
  cacheDir: string;
  /** Written by the proxy once it serves: its pid. */
  readyFile: string;
  /** Its output: a line per request (the lab's logs/package-proxy.log). */
  logFile: string;
}
