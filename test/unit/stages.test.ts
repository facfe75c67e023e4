import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultLab } from '../../lib/config/default.js';
import { validateConfig } from '../../lib/config/validate.js';
import { loadLab } from '../../lib/stages/load.js';
import { planLab, type StageSpec } from '../../lib/plan/plan.js';
import { parseStageHeader } from '../../lib/stages/shell.js';

describe('shell stage headers', () => {
  it('reads packages, fixtures, binds and online, exactly in the # lab: form', () => {
    const header = parseStageHeader(
      ['#!/bin/sh', '# lab: packages=nginx curl', '# lab: fixtures=web/site.conf web/index.html', '#lab: online', '# a comment', '# lab: binds=/root/sadm', 'set -e', '# lab: packages=not-a-header-any-more'].join('\n'),
      'site.sh',
    );
    expect(header).toEqual({ packages: ['nginx', 'curl'], fixtures: ['web/site.conf', 'web/index.html'], binds: ['/root/sadm'], online: true });
    expect(parseStageHeader('#!/bin/sh\nset -e\n', 'x.sh')).toEqual({ packages: [], fixtures: [], binds: [], online: false });
  });

  it('refuses an unknown key, a value for online, and a key without value, naming the line', () => {
    expect(() => parseStageHeader('#!/bin/sh\n# lab: pakages=nginx\n', 'site.sh')).toThrow("stage site.sh:2: unknown header key 'pakages' (known: packages, fixtures, binds, online, offline)");
    expect(() => parseStageHeader('# lab: online=yes\n', 'x.sh')).toThrow("stage x.sh:1: 'online' takes no value");
    expect(() => parseStageHeader('# lab: packages=\n', 'x.sh')).toThrow("stage x.sh:1: 'packages' needs a value");
  });
});

describe('keys of online stages', () => {
  const spec = (machine: string, name: string, definitionHash: string, online = false): StageSpec => ({ machine, name, packages: [], definitionHash, online });
  const plan = (webSite: string) =>
    planLab({
      baseKey: 'base',
      hasSnapshot: () => true,
      machines: [
        { name: 'web', dependsOn: [], stages: [spec('web', 'site', webSite)] },
        { name: 'client', dependsOn: ['web'], stages: [spec('client', 'offline', 'o'), spec('client', 'fetch', 'f', true)] },
        { name: 'other', dependsOn: ['web'], stages: [spec('other', 'offline', 'o')] },
      ],
    });
  const keys = (p: ReturnType<typeof plan>) => Object.fromEntries(p.machines.flatMap((m) => m.stages.map((s) => [`${m.name}@${s.name}`, s.key])));

  it('change when a machine they depend on changes; offline stages of dependents do not', () => {
    const [before, after] = [keys(plan('v1')), keys(plan('v2'))];
    expect(after['web@site']).not.toBe(before['web@site']);
    expect(after['client@fetch']).not.toBe(before['client@fetch']);
    expect(after['client@offline']).toBe(before['client@offline']);
    expect(after['other@offline']).toBe(before['other@offline']);
  });
});

describe('stage files', () => {
  it('refuses two files of one stage, naming both', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-stages-'));
    mkdirSync(path.join(dir, 'box'));
    writeFileSync(path.join(dir, 'box', 'site.sh'), '#!/bin/sh\ntrue\n');
    writeFileSync(path.join(dir, 'box', 'site.mjs'), 'export default {};\n');
    const config = validateConfig({ ...defaultLab, stagesDir: dir, zone: { dnsMachine: null }, machines: [{ name: 'box', address: '10.224.0.5', stages: ['site'] }] });
    await expect(loadLab(config)).rejects.toThrow(`stage box@site: site.mjs and site.sh both define it in ${path.join(dir, 'box')}: keep one`);
  });
});
