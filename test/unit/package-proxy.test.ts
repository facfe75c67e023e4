import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultLab } from '../../lib/config/default.js';
import { topologyOf } from '../../lib/config/topology.js';
import { validateConfig } from '../../lib/config/validate.js';
import { parseDeb822Sources, parseOneLineSources } from '../../lib/image/apt-sources.js';
import { type HostDistribution, parseOsRelease } from '../../lib/image/mirror.js';
import { packageProxyServer } from '../../lib/network/package-proxy-http.js';
import { cachedFile, judgeRequest, packageMirrors, packageProxyAddress, packageProxyAddresses } from '../../lib/network/package-proxy-policy.js';
import type { StageContext } from '../../lib/stages/define.js';
import { labView } from '../../lib/stages/load.js';
import systemStage, { aptProxyFiles } from '../../lib/stages/system.js';
import { FAST, poll } from '../../lib/wait.js';

const DEBIAN_HOST: HostDistribution = {
  ...parseOsRelease('ID=debian\n'),
  aptSources: parseDeb822Sources(
    'Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n\nTypes: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n\nTypes: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n',
  ),
};
const MIRRORS = ['http://mirror.example/debian', 'http://security.example/debian-security'];

describe("the package proxy's mirrors", () => {
  it("forwards to the image's mirror and the host's security mirror, and to nothing else the host's sources name", () => {
    expect(packageMirrors(validateConfig(defaultLab).image, DEBIAN_HOST)).toEqual(MIRRORS);
    expect(packageMirrors(validateConfig({ ...defaultLab, image: { mirror: 'http://local/debian/' } }).image, DEBIAN_HOST)).toEqual(['http://local/debian', 'http://security.example/debian-security']);
    const ubuntuHost: HostDistribution = { ...parseOsRelease('ID=ubuntu\n'), aptSources: parseOneLineSources('deb http://archive.example/ubuntu noble main\n') };
    expect(packageMirrors(validateConfig({ ...defaultLab, image: { distribution: 'ubuntu', suite: 'noble' } }).image, ubuntuHost)).toEqual(['http://archive.example/ubuntu']);
    expect(packageMirrors(validateConfig({ ...defaultLab, image: { distribution: 'arch', source: 'pacstrap' } }).image, DEBIAN_HOST)).toEqual([]);
  });
});

describe('what the package proxy lets through', () => {
  const judge = (target: string, method = 'GET') => judgeRequest(method, target, MIRRORS);

  it('forwards GET and HEAD to a mirror, under its path, and caches only what never changes there', () => {
    expect(judge('http://mirror.example/debian/dists/bookworm/InRelease')).toMatchObject({ allowed: true, cacheable: false });
    expect(judge('http://MIRROR.example:80/debian/pool/main/h/hello/hello_2.10-3_amd64.deb')).toMatchObject({ allowed: true, cacheable: true });
    expect(judge('http://mirror.example/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/0123abcd')).toMatchObject({ allowed: true, cacheable: true });
    expect(judge('http://security.example/debian-security/pool/updates/main/o/openssl/libssl3_3.0.15-1~deb12u1_amd64.deb')).toMatchObject({ allowed: true, cacheable: true });
    expect(judge('http://mirror.example/debian/pool/main/h/hello/hello_2.10-3_amd64.deb', 'HEAD')).toMatchObject({ allowed: true, cacheable: false });
    expect(judge('http://mirror.example/debian/pool/main/h/hello/hello_2.10-3_amd64.deb?x=1')).toMatchObject({ allowed: true, cacheable: false });
    expect(judge('http://mirror.example/debian/pool/main/h/hello/hello%2e10_amd64.deb')).toMatchObject({ allowed: true, cacheable: false });
  });

  it('refuses every other destination, with a status and the reason', () => {
    expect(judge('http://198.51.100.1/')).toEqual({ allowed: false, status: 403, reason: 'http://198.51.100.1/ is not a mirror of this lab (it forwards to http://mirror.example/debian, http://security.example/debian-security)' });
    for (const target of [
      'http://example.org/debian/dists/bookworm/InRelease',
      'http://mirror.example/debian-evil/x', // a prefix of the path is no mirror
      'http://mirror.example/debian/../etc/passwd', // dot segments are resolved before comparing
      'http://mirror.example/debian/%2e%2e/other',
      'http://mirror.example:8080/debian/x', // another port is another origin
      'http://mirror.example.evil.org/debian/x',
      'http://security.example/debian/x', // the security host for the security path only
    ]) expect(judge(target), target).toMatchObject({ allowed: false, status: 403 });
    expect(judge('http://user:pw@mirror.example/debian/x')).toMatchObject({ allowed: false, status: 403, reason: 'a URL with credentials is refused' });
    expect(judge('https://mirror.example/debian/x')).toMatchObject({ allowed: false, status: 400 });
    expect(judge('/debian/dists/bookworm/InRelease')).toMatchObject({ allowed: false, status: 400 });
    expect(judge('mirror.example:443', 'CONNECT')).toMatchObject({ allowed: false, status: 405, reason: expect.stringContaining('CONNECT') });
    expect(judge('http://mirror.example/debian/x', 'POST')).toMatchObject({ allowed: false, status: 405 });
    expect(judgeRequest('GET', 'http://mirror.example/debian/x', [])).toMatchObject({ allowed: false, status: 403 });
  });

  it('keeps a cached file under the cache, by host and path', () => {
    const verdict = judge('http://mirror.example/debian/pool/main/h/hello/hello_2.10-3_amd64.deb');
    expect(verdict.allowed && cachedFile('/cache/proxy', verdict.url)).toBe(path.join('/cache/proxy', 'mirror.example', 'debian/pool/main/h/hello/hello_2.10-3_amd64.deb'));
  });
});

describe('where machines find the package proxy', () => {
  it("is the host's address on the zone, for containers only, and none with packages.proxy: false", () => {
    const config = validateConfig({ ...defaultLab, machines: [...defaultLab.machines, { name: 'pc', kind: 'vm' }] });
    const topology = topologyOf(config);
    expect(topology.machines.map((m) => packageProxyAddress(config, topology, m))).toEqual(['10.224.0.1', '10.224.0.1', '10.224.0.1', undefined]);
    expect(packageProxyAddresses(config, topology)).toEqual(['10.224.0.1']);
    const off = validateConfig({ ...defaultLab, packages: { proxy: false } });
    expect(packageProxyAddresses(off, topologyOf(off))).toEqual([]);
  });

  it("on several networks: the host's address on a NAT'ed network the machine is on, else the uplink's, reached through the router; none on an isolated network", () => {
    const config = validateConfig({
      ...defaultLab,
      networks: [
        { name: 'uplink', subnet: '10.9.0.0/24', nat: true },
        { name: 'servers', subnet: '192.168.1.0/24', router: 'gw' },
        { name: 'isolated', subnet: '192.168.9.0/24' },
      ],
      machines: [
        { name: 'gw', interfaces: [{ network: 'uplink', address: '10.9.0.254' }, { network: 'servers', address: '192.168.1.254' }] },
        { name: 'web', interfaces: [{ network: 'servers', address: '192.168.1.10' }] },
        { name: 'alone', interfaces: [{ network: 'isolated', address: '192.168.9.10' }] },
      ],
    });
    const topology = topologyOf(config);
    expect(topology.machines.map((m) => `${m.name}:${packageProxyAddress(config, topology, m)}`)).toEqual(['gw:10.9.0.1', 'web:10.9.0.1', 'alone:undefined']);
    const isolated = validateConfig({ ...defaultLab, zone: { dnsMachine: null }, networks: [{ name: 'isolated', subnet: '192.168.9.0/24' }], machines: [{ name: 'alone', interfaces: [{ network: 'isolated', address: '192.168.9.10' }] }] });
    expect(packageProxyAddresses(isolated, topologyOf(isolated))).toEqual([]);
  });

  it('is an input of the system stage, which points apt at it, unless packages.proxy is false or the image has no apt', async () => {
    const written = async (overrides: object) => {
      const config = validateConfig({ ...defaultLab, ...overrides });
      const view = labView(config, config.machines[0]!);
      const files: string[] = [];
      const ctx = { lab: view, writeFile: async (file: string) => void files.push(file), enable: async () => undefined } as unknown as StageContext;
      await systemStage.run!(ctx);
      return { input: (systemStage.inputs!(view) as { aptProxy: string | null }).aptProxy, proxyFiles: files.filter((f) => f.includes('proxy')) };
    };
    expect(await written({})).toEqual({ input: '10.224.0.1:3142', proxyFiles: ['/etc/apt/apt.conf.d/80lab-proxy', '/usr/local/sbin/lab-apt-proxy'] });
    expect(await written({ packages: { proxy: false } })).toEqual({ input: null, proxyFiles: [] });
    expect(await written({ image: { distribution: 'arch', source: 'pacstrap' } })).toEqual({ input: null, proxyFiles: [] });
  });

  it("has apt use it in the running machine, and the host's network in a build step", () => {
    const [conf, script] = aptProxyFiles('10.224.0.1:3142');
    expect(conf!.content).toContain('Acquire::http::Proxy-Auto-Detect "/usr/local/sbin/lab-apt-proxy";');
    expect(script).toMatchObject({ path: '/usr/local/sbin/lab-apt-proxy', mode: 0o755 });
    expect(script!.content).toContain('if [ -d /run/systemd/system ]; then echo http://10.224.0.1:3142/; else echo DIRECT; fi');
  });
});

describe('the package proxy at work (in this process, a mirror of the test\'s own)', () => {
  /** A mirror on 127.0.0.1 that counts requests by path, and the proxy in front of it. */
  async function proxyAndMirror() {
    const seen: string[] = [];
    const mirror = createServer((req, res) => {
      seen.push(req.url!);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(`content of ${req.url}`);
    });
    await new Promise<void>((resolve) => mirror.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(mirror.address() as AddressInfo).port}`;
    const cacheDir = mkdtempSync(path.join(tmpdir(), 'lab-proxy-cache-'));
    const lines: string[] = [];
    const proxy = packageProxyServer({ mirrors: [`${base}/debian`], cacheDir, log: (line) => lines.push(line) });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const port = (proxy.address() as AddressInfo).port;
    const get = (target: string, options: { method?: string; headers?: Record<string, string> } = {}) =>
      new Promise<{ status: number; reason: string; body: string; headers: Record<string, unknown> }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: target, method: options.method ?? 'GET', headers: options.headers }, (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, reason: res.statusMessage!, body, headers: res.headers }));
        });
        req.on('error', reject);
        req.end();
      });
    const close = () => Promise.all([proxy, mirror].map((s) => new Promise((resolve) => s.close(resolve))));
    return { base, seen, lines, get, cacheDir, port, mirror, close };
  }

  it('forwards to the mirror, keeps a package in the cache and answers the next request for it from there', async () => {
    const { base, seen, lines, get, cacheDir, close } = await proxyAndMirror();
    try {
      expect(await get(`${base}/debian/dists/bookworm/InRelease`)).toMatchObject({ status: 200, body: 'content of /debian/dists/bookworm/InRelease' });
      const deb = `${base}/debian/pool/main/h/hello/hello_2.10-3_amd64.deb`;
      expect(await get(deb)).toMatchObject({ status: 200, body: 'content of /debian/pool/main/h/hello/hello_2.10-3_amd64.deb' });
      await poll('the package in the cache (its line logged)', () => lines.length === 2, { within: 5000, every: FAST }); // the client may have its answer first
      expect(await get(deb)).toMatchObject({ status: 200, body: 'content of /debian/pool/main/h/hello/hello_2.10-3_amd64.deb' });
      expect(await get(deb, { headers: { range: 'bytes=11-' } })).toMatchObject({ status: 206, body: '/debian/pool/main/h/hello/hello_2.10-3_amd64.deb' });
      expect(seen).toEqual(['/debian/dists/bookworm/InRelease', '/debian/pool/main/h/hello/hello_2.10-3_amd64.deb']);
      expect(readFileSync(path.join(cacheDir, new URL(base).host, 'debian/pool/main/h/hello/hello_2.10-3_amd64.deb'), 'utf8')).toBe('content of /debian/pool/main/h/hello/hello_2.10-3_amd64.deb');
      expect(lines.map((l) => l.split(' ').slice(1, 6).join(' '))).toEqual([
        `127.0.0.1 GET ${base}/debian/dists/bookworm/InRelease 200 from`,
        `127.0.0.1 GET ${deb} 200 from`,
        `127.0.0.1 GET ${deb} 200 from`,
        `127.0.0.1 GET ${deb} 206 from`,
      ]);
      expect(lines.map((l) => /\d{3} (.*) \d+B \d+ms$/.exec(l)![1])).toEqual(['from mirror', 'from mirror, cached', 'from cache', 'from cache']);
    } finally {
      await close();
    }
  });

  it('refuses another destination and CONNECT with a clear status, and never reaches out for them', async () => {
    const { base, seen, lines, get, port, close } = await proxyAndMirror();
    try {
      const refused = await get('http://198.51.100.1/');
      expect(refused).toMatchObject({ status: 403, reason: 'Not a mirror of this lab' });
      expect(refused.body).toContain("lab's package proxy refused this request: http://198.51.100.1/ is not a mirror of this lab");
      expect(await get(`${base}/other/x`)).toMatchObject({ status: 403 });
      const tunnel = await new Promise<string>((resolve) => {
        const socket = connect(port, '127.0.0.1', () => socket.write('CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n'));
        let answer = '';
        socket.on('data', (chunk) => (answer += chunk.toString()));
        socket.on('end', () => resolve(answer));
      });
      expect(tunnel).toMatch(/^HTTP\/1\.1 405 Refused by the lab package proxy\r\n/);
      expect(seen).toEqual([]);
      expect(lines.every((l) => / REFUSED \(/.test(l))).toBe(true);
    } finally {
      await close();
    }
  });

  it('answers 502 when the mirror cannot be reached, and caches nothing', async () => {
    const { base, get, mirror, cacheDir, close } = await proxyAndMirror();
    await new Promise((resolve) => mirror.close(resolve));
    try {
      const reply = await get(`${base}/debian/pool/main/h/hello/hello_2.10-3_amd64.deb`);
      expect(reply).toMatchObject({ status: 502, reason: 'Mirror unreachable' });
      expect(readdirSync(cacheDir)).toEqual([]);
    } finally {
      await close();
    }
  });
});
