/**
 * lab validate: the config, the stages, each stage file's syntax and the scenarios' types, every
 * problem listed with its file and line; without root, and touching nothing on the host. CI runs it
 * here on the default lab and on every example.
 */
import { execa } from 'execa';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cacheFile } from '../../lib/config/cache.js';
import { validate } from '../../lib/engine/validate.js';
import { fieldLines } from '../../lib/validate/config.js';
import { formatProblem } from '../../lib/validate/problem.js';
import { hasTool, parseAnsibleError, parsePuppetErrors, parseShellcheck, parseShellSyntax } from '../../lib/validate/syntax.js';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const made: string[] = [];
afterAll(() => made.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

/** A lab's files in a directory of their own, which `nobody` may read. */
function labDir(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'lab-validate-test-'));
  chmodSync(dir, 0o755);
  made.push(dir);
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), content);
  }
  return dir;
}

/** The CLI, as `nobody` when the tests run as root: lab validate needs no privilege. */
function labValidate(args: string[], cwd = repoRoot) {
  const asNobody = process.getuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : [];
  const [command, ...rest] = [...asNobody, process.execPath, path.join(repoRoot, 'bin', 'lab.js'), ...args, 'validate'];
  return execa(command!, rest, { cwd, reject: false, env: { HOME: '/nonexistent' }, timeout: 5 * 60_000 });
}

describe('lab validate on the labs this repository ships', () => {
  const examples = readdirSync(path.join(repoRoot, 'examples')).flatMap((e) => readdirSync(path.join(repoRoot, 'examples', e)).filter((f) => f.startsWith('lab.config.')).map((f) => path.join('examples', e, f)));

  // Side by side: each is a process of its own, mostly a type check.
  it.concurrent.each([['the default lab', []], ...examples.map((file) => [file, ['--config', file]])] as [string, string[]][])('%s passes, without root', async (_, args) => {
    const result = await labValidate(args);
    expect(result.exitCode, `${result.stdout}\n${result.stderr}`).toBe(0);
    expect(result.stdout).toMatch(/^lab validate: no problem in .*tsc --noEmit: \d+ files/);
  }, 5 * 60_000);
});

describe('lab validate on a broken lab', () => {
  it('lists every problem, each with its file and line, and exits 2: a config field, a shell syntax error, a scenario type error', async () => {
    const dir = labDir({
      'lab.config.yaml': ['zone: { dnsMachine: null }', 'machines:', '  - name: web', '    address: 10.224.0.10', '    adress: 10.224.0.11', '    stages: [site]', ''].join('\n'),
      'stages/web/site.sh': ['#!/bin/sh', 'set -e', 'if true; then', '  echo hi', ''].join('\n'),
      'scenarios/web.test.ts': ["const port: number = 'eighty';", 'export { port };', ''].join('\n'),
    });
    const result = await labValidate([], dir);
    expect(result.exitCode).toBe(2);
    expect(result.stdout.split('\n')).toEqual([
      `lab.config.yaml:5: invalid config: machines.0: Unrecognized key: "adress"`,
      'stages/web/site.sh:5: Syntax error: end of file unexpected (expecting "fi")',
      "scenarios/web.test.ts:1:7: TS2322: Type 'string' is not assignable to type 'number'.",
    ]);
    expect(result.stderr).toBe('lab validate: 3 problems');
  }, 5 * 60_000);

  it("finds every stage's problem, not the first only: an unknown stage, a fixture missing, a header key, a playbook's syntax", async () => {
    const dir = labDir({
      'lab.config.yaml': ['zone: { dnsMachine: null }', 'machines:', '  - { name: web, address: 10.224.0.10, stages: [site, nosuch, play] }', '  - { name: db, address: 10.224.0.20, stages: [data] }', ''].join('\n'),
      'stages/web/site.sh': ['#!/bin/sh', '# lab: fixtures=site/index.html', 'true', ''].join('\n'),
      'stages/web/play.yml': ['- hosts: all', '  tasks:', '    - name: two actions', '      ansible.builtin.copy: { dest: /x, content: x }', '      ansible.builtin.command: true', ''].join('\n'),
      'stages/db/data.sh': ['#!/bin/sh', '# lab: pakages=postgresql', 'true', ''].join('\n'),
      'stages/db/unused.sh': ['#!/bin/sh', 'echo $((', ''].join('\n'),
      'fixtures/.keep': '',
      'scenarios/.keep': '', // none to type-check (without scenarios/, lab test would run lab's own)
    });
    const report = await validate({ cwd: dir });
    const found = report.problems.map((p) => formatProblem(p, dir));
    expect(found).toEqual([
      expect.stringMatching(/^stage web@site: fixture 'site\/index.html' not found in /),
      expect.stringMatching(/^machines\.0\.stages: unknown stage 'nosuch' for machine 'web'/),
      expect.stringMatching(/^stages\/db\/data\.sh:2: unknown header key 'pakages'/),
      ...(hasTool('ansible') ? [expect.stringMatching(/^stages\/web\/play\.yml:3:7: conflicting action statements/)] : []),
      "stages/db/unused.sh:3: Syntax error: Missing '))'",
    ]);
  }, 5 * 60_000);

  it('touches nothing of the host: no state, cache or lock directory, no config cache', async () => {
    const dir = labDir({ 'lab.config.yaml': ['stateDir: state', 'cacheDir: cache', 'zone: { dnsMachine: null }', 'machines: [{ name: solo, address: 10.224.0.9 }]', ''].join('\n'), 'scenarios/.keep': '' });
    const report = await validate({ cwd: dir });
    expect(report.problems).toEqual([]);
    expect(readdirSync(dir)).toEqual(['lab.config.yaml', 'scenarios']);
    const cached = cacheFile(path.join(dir, 'lab.config.yaml'), {});
    if (cached) expect(existsSync(cached)).toBe(false);
  }, 60_000);
});

describe("reading the tools' output", () => {
  it('dash and bash syntax errors, shellcheck', () => {
    expect(parseShellSyntax('x.sh: 5: Syntax error: end of file unexpected (expecting "fi")\n', '/l/x.sh')).toEqual([{ file: '/l/x.sh', line: 5, message: 'Syntax error: end of file unexpected (expecting "fi")' }]);
    expect(parseShellSyntax('x.sh: line 5: syntax error: unexpected end of file\n', '/l/x.sh')).toEqual([{ file: '/l/x.sh', line: 5, message: 'syntax error: unexpected end of file' }]);
    expect(parseShellcheck("/l/x.sh:3:6: warning: foo appears unused. Verify use (or export if used externally). [SC2034]\n")).toEqual([
      { file: '/l/x.sh', line: 3, column: 6, message: 'shellcheck warning: foo appears unused. Verify use (or export if used externally). [SC2034]' },
    ]);
  });

  it("Ansible's error and where it appears to be", () => {
    const output = "ERROR! conflicting action statements: apt, bogus_key\n\nThe error appears to be in '/l/site.yml': line 3, column 7, but may\nbe elsewhere in the file depending on the exact syntax problem.\n";
    expect(parseAnsibleError(output, '/l/site.yml')).toEqual({ file: '/l/site.yml', line: 3, column: 7, message: 'conflicting action statements: apt, bogus_key' });
    expect(parseAnsibleError('ERROR! the playbook: x.yml could not be found\n', '/l/x.yml')).toEqual({ file: '/l/x.yml', message: 'the playbook: x.yml could not be found' });
  });

  it("Puppet's errors, in both of its forms", () => {
    const output = "Error: Could not parse for environment production: Syntax error at '}' (file: /l/site.pp, line: 3, column: 1)\nError: Try 'puppet help parser validate' for usage\n";
    expect(parsePuppetErrors(output, '/l/site.pp')).toEqual([
      { file: '/l/site.pp', line: 3, column: 1, message: "Could not parse for environment production: Syntax error at '}'" },
      { file: '/l/site.pp', message: "Try 'puppet help parser validate' for usage" },
    ]);
    expect(parsePuppetErrors('Error: Syntax error at end of input at /l/site.pp:9:2\n', '/l/site.pp')).toEqual([{ file: '/l/site.pp', line: 9, column: 2, message: 'Syntax error at end of input' }]);
  });

  it('the line of a config field in YAML and JSON: the deepest part of it the file has', () => {
    const yaml = fieldLines(['name: x', 'machines:', '  - name: gw', '  - name: web', '    stages: [a, b]', ''].join('\n'));
    expect(yaml(['machines', 1, 'stages', 1])).toBe(5);
    expect(yaml(['machines', 1, 'address'])).toBe(4);
    expect(yaml(['storage', 'kind'])).toBeUndefined();
    expect(fieldLines('{\n  "machines": [\n    { "name": "gw", "kind": "box" }\n  ]\n}\n')(['machines', 0, 'kind'])).toBe(3);
  });
});
