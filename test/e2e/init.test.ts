/**
 * lab init as a new team uses it: a lab made from nothing, with npm pack's tarball installed into it
 * (the tarball and its dependencies from npm's cache), its scenarios type-checked with tsc --strict,
 * lab validate on it and on a broken copy (every error found), then lab up && lab test, and nothing
 * left after lab destroy.
 */
import { execa } from 'execa';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostTraces, lab, repoRoot, uniqueName } from './helpers.js';

const name = uniqueName('init');
const parent = mkdtempSync(path.join(tmpdir(), 'lab-init-'));
// lab init names the lab after its directory.
const team = path.join(parent, name);
const npx = (args: string[], cwd = team) => execa('npx', ['--no-install', ...args], { cwd, reject: false, timeout: 10 * 60_000 });

beforeAll(async () => {
  const init = await lab(['init', team]);
  expect(init.exitCode, init.stderr).toBe(0);
  const pack = await execa('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', parent], { cwd: repoRoot });
  const tarball = path.join(parent, pack.stdout.trim().split('\n').at(-1)!);
  await execa('npm', ['install', '--save-dev', '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: team, timeout: 10 * 60_000 });
}, 15 * 60_000);

afterAll(async () => {
  await npx(['lab', 'destroy']);
  rmSync(parent, { recursive: true, force: true });
});

describe('a team lab made by lab init', () => {
  it('type-checks with tsc --strict and passes lab validate as it was made', async () => {
    const tsc = await npx(['tsc', '--strict', '--noEmit', '-p', '.']);
    expect(tsc.exitCode, tsc.stdout).toBe(0);
    const validate = await npx(['lab', 'validate']);
    expect(validate.exitCode, `${validate.stdout}\n${validate.stderr}`).toBe(0);
    expect(validate.stdout).toContain('lab validate: no problem in lab.config.yaml (2 machines); sh -n: 1 file, tsc --noEmit: 1 file');
  });

  it('has every error of a broken copy found by lab validate: a config field, a shell syntax error, a scenario type error', async () => {
    const broken = path.join(parent, 'broken');
    cpSync(team, broken, { recursive: true, filter: (source) => path.basename(source) !== 'node_modules' });
    symlinkSync(path.join(team, 'node_modules'), path.join(broken, 'node_modules'));
    const edit = (file: string, change: (text: string) => string) => writeFileSync(path.join(broken, file), change(readFileSync(path.join(broken, file), 'utf8')));
    edit('lab.config.yaml', (text) => text.replace('{ name: web, stages: [site] }', '{ name: web, stages: [site], adress: dhcp }'));
    edit('stages/web/site.sh', (text) => `${text}if true; then\n`);
    edit('scenarios/site.test.ts', (text) => `${text}const port: number = await web.succeed('true');\nexport { port };\n`);
    const validate = await npx(['lab', 'validate'], broken);
    expect(validate.exitCode).toBe(2);
    const lines = (file: string) => readFileSync(path.join(broken, file), 'utf8').split('\n');
    const lineOf = (file: string, text: string) => lines(file).findIndex((l) => l.includes(text)) + 1;
    expect(validate.stdout.split('\n')).toEqual([
      `lab.config.yaml:${lineOf('lab.config.yaml', 'adress')}: invalid config: machines.1: Unrecognized key: "adress"`,
      `stages/web/site.sh:${lines('stages/web/site.sh').length}: Syntax error: end of file unexpected (expecting "fi")`,
      `scenarios/site.test.ts:${lineOf('scenarios/site.test.ts', 'const port')}:7: TS2322: Type 'string' is not assignable to type 'number'.`,
    ]);
  });

  it('comes up with lab up and passes its scenario with lab test, and leaves nothing after lab destroy', async () => {
    const up = await npx(['lab', 'up']);
    expect(up.exitCode, up.stderr).toBe(0);
    const test = await npx(['lab', 'test', '--reports', path.join(team, 'reports')]);
    expect(test.exitCode, `${test.stdout}\n${test.stderr}`).toBe(0);
    expect(test.stdout).toContain('lab test: 1 passed, 0 failed');
    await npx(['lab', 'destroy']);
    expect(hostTraces(name)).toEqual([]);
  });
});
