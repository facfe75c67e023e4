/** lab init: a new team lab from nothing, which lab validate passes as it is. */
import { execa } from 'execa';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { initLab } from '../../lib/engine/init.js';
import { validate } from '../../lib/engine/validate.js';
import { formatProblem } from '../../lib/validate/problem.js';
import { linkInstalledLab } from './installed.js';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const parent = mkdtempSync(path.join(tmpdir(), 'lab-init-test-'));
afterAll(() => rmSync(parent, { recursive: true, force: true }));

describe('lab init', () => {
  it('writes a team lab in a new directory, named after it, that lab validate passes at once', async () => {
    const dir = path.join(parent, 'Team Lab_2026');
    const report = initLab(dir);
    expect(report.name).toBe('team-lab-202');
    expect(report.files.sort()).toEqual(['.gitignore', 'fixtures/site/index.html', 'lab.config.yaml', 'package.json', 'scenarios/site.test.ts', 'stages/web/site.sh', 'tsconfig.json']);
    const packageJson = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name: string; type: string; devDependencies: Record<string, string> };
    const own = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> };
    expect(packageJson).toMatchObject({ name: 'team-lab-202', type: 'module', devDependencies: { 'sadm-lab': `^${own.version}`, typescript: own.dependencies.typescript } });
    const config = readFileSync(path.join(dir, 'lab.config.yaml'), 'utf8');
    expect(config.split('\n')[0]).toBe('# yaml-language-server: $schema=node_modules/sadm-lab/schema/lab.config.schema.json');
    expect(config).toContain('\nname: team-lab-202\n');
    expect(readFileSync(path.join(dir, '.gitignore'), 'utf8')).toContain('reports/');
    expect(statSync(path.join(dir, 'stages/web/site.sh')).mode & 0o111).not.toBe(0);

    linkInstalledLab(dir); // what npm install does
    const validated = await validate({ cwd: dir });
    expect(validated.problems.map((p) => formatProblem(p, dir))).toEqual([]);
    expect(validated.checked).toMatchObject({ 'sh -n': 1, 'tsc --noEmit': 1 });
  }, 120_000);

  it('takes --name, and refuses a bad one, or a directory that is not empty, before writing anything (exit 2)', async () => {
    expect(initLab(path.join(parent, 'named'), { name: 'mylab' }).name).toBe('mylab');
    expect(() => initLab(path.join(parent, 'bad'), { name: 'My Lab' })).toThrow(/--name My Lab: lowercase letters/);
    const full = path.join(parent, 'full');
    mkdirSync(full);
    writeFileSync(path.join(full, 'notes.txt'), '');
    const cli = await execa(process.execPath, [path.join(repoRoot, 'bin', 'lab.js'), 'init', full], { reject: false });
    expect(cli.exitCode).toBe(2);
    expect(cli.stderr).toContain(`lab: the directory ${full} is not empty (notes.txt)`);
    expect(readFileSync(path.join(full, 'notes.txt'), 'utf8')).toBe('');
  }, 60_000);
});
