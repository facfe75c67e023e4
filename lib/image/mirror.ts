import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { type AptSource, hostAptSources, pickDebianMirror } from './apt-sources.js';

/** What the host runs, read from its files (os-release, apt sources); nothing is run. */
export interface HostDistribution {
  id: string;
  idLike: string[];
  aptSources: AptSource[];
}

/** Each distribution's own default mirror, for images of a distribution other than the host's. */
export const DEFAULT_MIRRORS: Record<string, string> = {
  debian: 'http://deb.debian.org/debian',
  ubuntu: 'http://archive.ubuntu.com/ubuntu',
};

export function parseOsRelease(text: string): { id: string; idLike: string[] } {
  const field = (name: string) => new RegExp(`^${name}=["']?([^"'\\n]*)`, 'm').exec(text)?.[1] ?? '';
  return { id: field('ID'), idLike: field('ID_LIKE').split(/\s+/).filter(Boolean) };
}

export function readHostDistribution(etc = '/etc'): HostDistribution {
  const osRelease = [path.join(etc, 'os-release'), '/usr/lib/os-release'].find(existsSync);
  const { id, idLike } = parseOsRelease(osRelease ? readFileSync(osRelease, 'utf8') : '');
  return { id, idLike, aptSources: hostAptSources(path.join(etc, 'apt')) };
}

export interface MirrorChoice {
  mirror?: string;
  why: string;
}

/**
 * The mirror an image of `distribution` is built from: the configured one; otherwise the host's
 * own, but only when the host runs that distribution (an Ubuntu host's mirror has no Debian
 * suites); otherwise the distribution's default mirror.
 */
export function chooseMirror(distribution: string, configured: string | undefined, host: HostDistribution): MirrorChoice {
  if (configured) return { mirror: configured, why: 'image.mirror in the config' };
  if (host.id === distribution) {
    const own = pickDebianMirror(host.aptSources);
    if (own) return { mirror: own, why: `the mirror the host's apt sources name (the host runs ${distribution})` };
  }
  const fallback = DEFAULT_MIRRORS[distribution];
  const hostIs = host.id ? `the host runs ${host.id}` : 'the host names no distribution';
  if (fallback) {
    return { mirror: fallback, why: `${distribution}'s default mirror (${host.id === distribution ? "the host's apt sources name no plain release" : hostIs})` };
  }
  return { why: `no mirror known for ${distribution} (${hostIs}): set image.mirror` };
}
