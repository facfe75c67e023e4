/**
 * Packages at run time, hermetically, and a team's Ansible and Puppet content as it ships: one
 * machine built by a playbook whose role (from roles/ beside the config: a template, a handler,
 * `apt: update_cache=yes` and a package) reads ansible.cfg and a collection's filter, then by a
 * manifest whose module (from modules/) takes its parameters from hiera and installs a package.
 * The packages come through lab's package proxy, which forwards only to the image's mirrors from
 * the host's network, keeps packages in the shared cache and refuses every other destination.
 */
import { execa } from 'execa';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostTraces, lab, labOk, STATE_ROOT, uniqueName } from './helpers.js';

const name = uniqueName('prx');
const dir = mkdtempSync(path.join(tmpdir(), 'lab-packages-'));
const config = path.join(dir, 'lab.config.yaml');
const proxyLog = path.join(STATE_ROOT, name, 'logs', 'package-proxy.log');
const exec = (...argv: string[]) => lab(['--config', config, 'exec', 'solo', '--timeout', '3m', '--', ...argv]);

function write(file: string, content: string): void {
  mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
  writeFileSync(path.join(dir, file), content);
}

beforeAll(async () => {
  write('lab.config.yaml', [`name: ${name}`, 'zone: { dnsMachine: null }', 'machines:', '  - { name: solo, address: 10.224.0.9, stages: [play, site] }', ''].join('\n'));
  write('stages/solo/play.yml', "# The team's playbook, its role from roles/ beside the config.\n- hosts: all\n  roles: [web]\n");
  write(
    'roles/web/tasks/main.yml',
    [
      '- name: cron, from the mirror through the package proxy',
      '  ansible.builtin.apt: { name: cron, update_cache: true }',
      "- name: the team's config",
      '  ansible.builtin.template: { src: team.conf.j2, dest: /etc/team.conf }',
      '  notify: note the change',
      "- name: the team's own filter, from collections/",
      "  ansible.builtin.copy: { dest: /etc/team-shout, content: \"{{ 'hello' | team.util.shout }}\\n\" }",
      '',
    ].join('\n'),
  );
  write('roles/web/handlers/main.yml', '- name: note the change\n  ansible.builtin.copy: { dest: /etc/team-handler, content: "notified on {{ lab_machine }}\\n" }\n');
  write('roles/web/templates/team.conf.j2', '# {{ ansible_managed }}\nmachine={{ lab_machine }} domain={{ lab_domain }}\n');
  write('ansible.cfg', "[defaults]\nansible_managed = managed by the team's ansible.cfg\n");
  write('collections/ansible_collections/team/util/plugins/filter/shout.py', "class FilterModule:\n    def filters(self):\n        return {'shout': lambda text: text.upper() + '!'}\n");
  write('stages/solo/site.pp', "# The team's manifest, its module from modules/ and its data from hiera.\ninclude motd\n");
  write('modules/motd/manifests/init.pp', "class motd (String $message, String $note) {\n  package { 'tree': ensure => installed }\n  file { '/etc/team-motd': content => \"${message}\\n${note}\\n\" }\n}\n");
  write('hiera.yaml', ['version: 5', 'defaults: { datadir: data, data_hash: yaml_data }', 'hierarchy:', "  - { name: the machine's own, path: 'nodes/%{facts.lab_machine}.yaml' }", '  - { name: common, path: common.yaml }', ''].join('\n'));
  write('data/common.yaml', "motd::message: from the team's hiera data\nmotd::note: common\n");
  write('data/nodes/solo.yaml', "motd::note: solo's own\n");
  await labOk(['--config', config, 'up']);
}, 10 * 60_000);

afterAll(async () => {
  await lab(['--config', config, 'destroy']);
  expect(hostTraces(name)).toEqual([]);
});

describe("a team's Ansible and Puppet content", () => {
  it('runs a role from roles/ with its template, handler and package, reading ansible.cfg and a collection', async () => {
    expect((await exec('cat', '/etc/team.conf')).stdout).toBe("# managed by the team's ansible.cfg\nmachine=solo domain=prolo\n");
    expect((await exec('cat', '/etc/team-handler')).stdout).toBe('notified on solo\n');
    expect((await exec('cat', '/etc/team-shout')).stdout).toBe('HELLO!\n');
    expect((await exec('dpkg-query', '-W', '-f', '${Status}', 'cron', 'python3-apt')).stdout).toBe('install ok installedinstall ok installed');
  });

  it('applies a module from modules/ with its parameters from hiera, the machine\'s own data first', async () => {
    expect((await exec('cat', '/etc/team-motd')).stdout).toBe("from the team's hiera data\nsolo's own\n");
    expect((await exec('tree', '--version')).exitCode).toBe(0);
  });

  it("got their packages through the package proxy, the lists refreshed by Ansible's update_cache", () => {
    const log = readFileSync(proxyLog, 'utf8');
    expect(log).toMatch(/ 10\.224\.0\.9 GET http:\/\/\S+\/dists\/bookworm\/InRelease 200 from mirror /);
    expect(log).toMatch(/ 10\.224\.0\.9 GET http:\/\/\S+\/pool\/main\/c\/cron\/cron_\S+\.deb 200 from /);
    expect(log).toMatch(/ 10\.224\.0\.9 GET http:\/\/\S+\/pool\/main\/t\/tree\/tree_\S+\.deb 200 from /);
  });
});

describe('the package proxy', () => {
  it("installs a package that is not in the base image with the machine's own apt, the second time from the shared cache", async () => {
    expect((await exec('dpkg', '-s', 'hello')).exitCode).not.toBe(0); // the lists are fresh: the playbook's update_cache refreshed them
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
