/**
 * Packages at run time, hermetically: a machine's apt goes through lab's package proxy, which
 * forwards only to the image's mirrors from the host's network, keeps packages in the shared cache
 * and refuses every other destination.
 */
import { execa } from 'execa';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostTraces, lab, labOk, STATE_ROOT, uniqueName } from './helpers.js';

const name = uniqueName('pkgs');
const dir = mkdtempSync(path.join(tmpdir(), 'lab-packages-'));
const config = path.join(dir, 'lab.config.yaml');
const proxyLog = path.join(STATE_ROOT, name, 'logs', 'package-proxy.log');
const exec = (...argv: string[]) => lab(['--config', config, 'exec', 'solo', '--timeout', '3m', '--', ...argv]);

function write(file: string, content: string): void {
  mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
  writeFileSync(path.join(dir, file), content);
}

beforeAll(async () => {
  write('lab.config.yaml', [`name: ${name}`, 'zone: { dnsMachine: null }', 'machines:', '  - { name: solo, address: 10.224.0.9 }', ''].join('\n'));
  await labOk(['--config', config, 'up']);
}, 10 * 60_000);

afterAll(async () => {
  await lab(['--config', config, 'destroy']);
  expect(hostTraces(name)).toEqual([]);
});

describe('the package proxy', () => {
  it("installs a package that is not in the base image with the machine's own apt, the second time from the shared cache", async () => {
    expect((await exec('dpkg', '-s', 'hello')).exitCode).not.toBe(0);
    const update = await exec('apt-get', 'update', '-q');
    expect(update.exitCode, update.stderr).toBe(0);
    for (const round of [1, 2]) {
      const install = await exec('sh', '-c', 'apt-get install -y -q hello && hello');
      expect(install.exitCode, `round ${round}: ${install.stderr}`).toBe(0);
      expect(install.stdout).toContain('Hello, world!');
      await exec('sh', '-c', 'apt-get purge -y -q hello && apt-get clean');
    }
    const fetches = readFileSync(proxyLog, 'utf8').split('\n').filter((line) => / GET http:\/\/\S+\/pool\/\S+\/hello_\S+\.deb 200 /.test(line));
    expect(fetches).toHaveLength(2);
    expect(fetches[0]).toMatch(/ 200 from (mirror, cached|cache) /); // another lab may have fetched it already
    expect(fetches[1]).toMatch(/^\S+ 10\.224\.0\.9 GET .* 200 from cache \d+B/);
  });

  it('refuses another destination and CONNECT with a clear status, and sends nothing there', async () => {
    // A counter of what reaches the simulated internet's server, in its namespace.
    const wan = ['netns', 'exec', `lab-${name}-wan`, 'nft'];
    await execa('ip', [...wan, '-f', '-'], { input: 'table inet prxcount {\n  chain input {\n    type filter hook input priority 0;\n    tcp dport 80 counter\n  }\n}\n' });
    const reached = async () => Number(/packets (\d+)/.exec((await execa('ip', [...wan, 'list', 'table', 'inet', 'prxcount'])).stdout)?.[1]);
    for (const target of ['http://198.51.100.1/', 'http://example.org/']) {
      const refused = await exec('curl', '-sS', '-i', '--max-time', '20', '-x', 'http://10.224.0.1:3142', target);
      expect(refused.stdout, target).toMatch(/^HTTP\/1\.1 403 Not a mirror of this lab\r\n/);
      expect(refused.stdout).toContain(`lab's package proxy refused this request: ${target} is not a mirror of this lab`);
    }
    const tunnel = await exec('curl', '-sS', '-o', '/dev/null', '-w', '%{http_connect}', '--max-time', '20', '-x', 'http://10.224.0.1:3142', 'https://example.org/');
    expect(tunnel.stdout).toBe('405');
    expect(await reached()).toBe(0);
    // The counter counts: the machine reaches the simulated internet itself, not through the proxy.
    expect((await exec('curl', '-sS', '--max-time', '20', 'http://198.51.100.1/')).stdout).toBe('198.51.100.2\n');
    expect(await reached()).toBeGreaterThan(0);
    const log = readFileSync(proxyLog, 'utf8');
    expect(log).toMatch(/ 10\.224\.0\.9 GET http:\/\/198\.51\.100\.1\/ 403 REFUSED \(http:\/\/198\.51\.100\.1\/ is not a mirror of this lab/);
    expect(log).toMatch(/ CONNECT example\.org:443 405 REFUSED/);
  });

  it('is shown by lab doctor, and stopped by lab down', async () => {
    const doctor = await labOk(['--config', config, 'doctor']);
    expect(doctor).toMatch(/packages: package proxy on 10\.224\.0\.1:3142, forwarding only to http:\/\/\S+/);
    expect(doctor).toMatch(/package proxy \(pid \d+\)/);
    await labOk(['--config', config, 'down']);
    expect(hostTraces(name).filter((trace) => trace.includes('package-proxy'))).toEqual([]);
  });
});
