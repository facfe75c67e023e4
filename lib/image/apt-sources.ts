import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface AptSource {
  uri: string;
  suites: string[];
}

/** Parses one-line `deb URI SUITE COMPONENTS` entries (sources.list format). */
export function parseOneLineSources(text: string): AptSource[] {
  return text
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .map((line) => /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ uri: m[1], suites: [m[2]] }));
}

/** Parses deb822 stanzas (`.sources` files): Types, URIs, Suites. */
export function parseDeb822Sources(text: string): AptSource[] {
  return text
    .split(/\n\s*\n/)
    .map((stanza) => {
      const fields = new Map<string, string>();
      for (const line of stanza.split('\n')) {
        const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
        if (m) fields.set(m[1].toLowerCase(), m[2].trim());
      }
      return fields;
    })
    .filter((f) => (f.get('types') ?? '').split(/\s+/).includes('deb') && f.get('enabled') !== 'no')
    .flatMap((f) => (f.get('uris') ?? '').split(/\s+/).filter(Boolean).map((uri) => ({ uri, suites: (f.get('suites') ?? '').split(/\s+/) })));
}

/**
 * The Debian mirror the host already uses: the first source whose suites are plain
 * releases (not -security or -updates), so the lab downloads from where the host does.
 */
export function pickDebianMirror(sources: readonly AptSource[]): string | undefined {
  const main = sources.find((s) => /^https?:\/\//.test(s.uri) && s.suites.some((suite) => /^[a-z]+$/.test(suite)) && !/security/.test(s.uri));
  return main?.uri.replace(/\/+$/, '');
}

export function hostAptSources(etcApt = '/etc/apt'): AptSource[] {
  const sources: AptSource[] = [];
  const list = path.join(etcApt, 'sources.list');
  if (existsSync(list)) sources.push(...parseOneLineSources(readFileSync(list, 'utf8')));
  const dir = path.join(etcApt, 'sources.list.d');
  if (existsSync(dir)) {
    for (const name of readdirSync(dir).sort()) {
      const text = readFileSync(path.join(dir, name), 'utf8');
      if (name.endsWith('.list')) sources.push(...parseOneLineSources(text));
      if (name.endsWith('.sources')) sources.push(...parseDeb822Sources(text));
    }
  }
  return sources;
}

/**
 * What an upgraded Debian or Ubuntu base fetches from: the release and its -updates on the image's
 * mirror, and -security (Debian: where the host's sources name a security mirror; Ubuntu: on the
 * mirror). Downloads stay on mirrors the host is configured with.
 */
export function upgradeSourcesList(distribution: string, suite: string, mirror: string, host: readonly AptSource[]): string {
  const lines = [`deb ${mirror} ${suite} main`, `deb ${mirror} ${suite}-updates main`];
  if (distribution === 'ubuntu') lines.push(`deb ${mirror} ${suite}-security main`);
  else {
    const security = securityMirror(suite, host);
    if (security) lines.push(`deb ${security} ${suite}-security main`);
  }
  return `# Written by lab image upgrade: the release, its updates and security fixes.\n${lines.join('\n')}\n`;
}

/** The Debian security mirror the host's sources name for `suite`, if any. */
export function securityMirror(suite: string, host: readonly AptSource[]): string | undefined {
  return host.find((s) => /security/.test(s.uri) && s.suites.includes(`${suite}-security`))?.uri.replace(/\/+$/, '');
}
