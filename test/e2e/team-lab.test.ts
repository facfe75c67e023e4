/**
 * A team's own lab, outside this repository, with lab installed as a dev dependency from `npm pack`'s
 * tarball: a shell stage with a package and a fixture, an online stage that fetches a page from
 * another machine over the lab network, a built-in stage used by name, and a scenario importing
 * `lab/scenario`. `npx lab up` and `npx lab test` run it.
 */
import { execa } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostTraces, repoRoot, uniqueName } from './helpers.js';

const name = uniqueName('team');
const team = mkdtempSync(path.join(tmpdir(), 'lab-team-'));
const npx = (args: string[]) => execa('npx', ['--no-install', 'lab', ...args], { cwd: team, reject: false, timeout: 10 * 60_000 });

function write(file: string, content: string): void {
  mkdirSync(path.dirname(path.join(team, file)), { recursive: true });
  writeFileSync(path.join(team, file), content);
}

function siteStage(version: string): string {
  return ['#!/bin/sh', `# web's site (${version})`, '# lab: packages=nginx-light', '# lab: fixtures=site/index.html', 'set -e', 'install -D -m 644 "$LAB_FIXTURES/site/index.html" /var/www/html/index.html', 'echo "served by $LAB_MACHINE for $LAB_DOMAIN" >> /var/www/html/index.html', 'systemctl enable nginx', ''].join('\n');
}

beforeAll(async () => {
  const pack = await execa('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', team], { cwd: repoRoot });
  const tarball = path.join(team, pack.stdout.trim().split('\n').at(-1)!);
  write('package.json', JSON.stringify({ name: 'team-lab', private: true, type: 'module', devDependencies: { 'sadm-lab': `file:${tarball}` } }, null, 2));
  await execa('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: team, timeout: 10 * 60_000 });
  write(
    'lab.config.yaml',
    [`name: ${name}`, 'machines:', '  - { name: gw, address: 10.224.0.254, stages: [dns] }', '  - { name: web, stages: [site] }', '  - { name: client, dependsOn: [web], stages: [fetch] }', ''].join('\n'),
  );
  write('stages/web/site.sh', siteStage('v1'));
  write('fixtures/site/index.html', '<h1>team site</h1>\n');
  write('stages/client/fetch.sh', ['#!/bin/sh', '# lab: online', 'set -e', 'curl -fsS http://web.$LAB_DOMAIN/ > /etc/fetched', ''].join('\n'));
  write(
    'scenarios/fetched.test.ts',
    [
      "import { expect, it } from 'vitest';",
      "import { useLab } from 'sadm-lab/scenario';",
      'const lab = await useLab();',
      "it('holds the page it fetched from web while it was built', async () => {",
      "  const page = await lab.machine('web').succeed('cat /var/www/html/index.html');",
      "  expect(await lab.machine('client').succeed('cat /etc/fetched')).toBe(page);",
      "  expect(page).toContain('<h1>team site</h1>');",
      '});',
      '',
    ].join('\n'),
  );
}, 15 * 60_000);

afterAll(async () => {
  await npx(['destroy']);
});

interface UpJson {
  machines: { name: string; stages: { name: string; action: string }[] }[];
}
const actions = (report: UpJson) => report.machines.flatMap((m) => m.stages.map((s) => `${m.name}@${s.name}:${s.action}`));

describe('a team lab with lab as a dev dependency', () => {
  it('comes up with npx lab up, and passes its own scenario with npx lab test', async () => {
    const up = await npx(['up', '--json']);
    expect(up.exitCode, up.stderr).toBe(0);
    expect(actions(JSON.parse(up.stdout) as UpJson).every((a) => a.endsWith(':build'))).toBe(true);
    const test = await npx(['test', '--reports', path.join(team, 'reports')]);
    expect(test.exitCode, `${test.stdout}\n${test.stderr}`).toBe(0);
    expect(test.stdout).toContain('lab test: 1 passed, 0 failed');
    expect(existsSync(path.join(team, 'scenarios', 'node_modules'))).toBe(false); // vite's cache is in the lab's state
  });

  it('rebuilds an edited shell stage, and the online stage that talked to its machine, and nothing else', async () => {
    write('stages/web/site.sh', siteStage('v2'));
    const up = await npx(['up', '--json']);
    expect(up.exitCode, up.stderr).toBe(0);
    expect(actions(JSON.parse(up.stdout) as UpJson)).toEqual([
      'gw@system:cached',
      'gw@dns:cached',
      'web@system:cached',
      'web@site:build',
      'client@system:cached',
      'client@fetch:build',
    ]);
    expect((await npx(['exec', 'client', '--', 'cat', '/etc/fetched'])).stdout).toContain('served by web for prolo');
  });

  it('refuses an unknown header key in a shell stage, naming the known ones, before anything changes', async () => {
    write('stages/web/site.sh', `#!/bin/sh\n# lab: pakages=nginx\n`);
    const up = await npx(['up']);
    expect(up.exitCode).toBe(2);
    expect(up.stderr).toContain("unknown header key 'pakages' (known: packages, fixtures, binds, online, offline, timeout, ready)");
    write('stages/web/site.sh', siteStage('v2'));
    await npx(['destroy']);
    expect(hostTraces(name)).toEqual([]);
  });
});
