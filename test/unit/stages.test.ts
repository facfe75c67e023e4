import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultLab } from '../../lib/config/default.js';
import { validateConfig } from '../../lib/config/validate.js';
import { loadLab } from '../../lib/stages/load.js';
import { planLab, type StageSpec } from '../../lib/plan/plan.js';
import { parseStageHeader } from '../../lib/stages/shell.js';
import { stageFailure } from '../../lib/engine/stage-failure.js';
import { CommandError } from '../../lib/exec.js';

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
    expect(() => parseStageHeader('#!/bin/sh\n# lab: pakages=nginx\n', 'site.sh')).toThrow("stage site.sh:2: unknown header key 'pakages' (known: packages, fixtures, binds, online, offline, timeout)");
    expect(() => parseStageHeader('# lab: online=yes\n', 'x.sh')).toThrow("stage x.sh:1: 'online' takes no value");
    expect(() => parseStageHeader('# lab: packages=\n', 'x.sh')).toThrow("stage x.sh:1: 'packages' needs a value");
  });

  it('reads a timeout as a duration, and refuses one that is not, exit 2 naming the line', () => {
    expect(parseStageHeader('#!/bin/sh\n# lab: timeout=30m\n', 'x.sh').timeoutSeconds).toBe(1800);
    expect(parseStageHeader('# lab: timeout=90\n', 'x.yml').timeoutSeconds).toBe(90);
    expect(parseStageHeader('# lab: packages=x\n', 'x.pp').timeoutSeconds).toBeUndefined();
    expect(() => parseStageHeader('# lab: timeout=soon\n', 'x.sh')).toThrow("stage x.sh:1: timeout: 'soon' is not a duration");
    expect(() => parseStageHeader('# lab: timeout=0s\n', 'x.sh')).toThrow('stage x.sh:1: timeout: 0s is out of range');
    expect(() => parseStageHeader('# lab: timeout=8d\n', 'x.sh')).toThrow(expect.objectContaining({ exitCode: 2 }));
    expect(() => parseStageHeader('# lab: timeout\n', 'x.sh')).toThrow("stage x.sh:1: 'timeout' needs a value (# lab: timeout=30m)");
  });
});

describe('stage timeouts', () => {
  it("a stage whose command timed out says where its timeout is set", () => {
    const timedOut = new CommandError({ argv: ['sh'], exitCode: -1, stdout: '', stderr: '', durationMs: 900_000 }, 'timed out after 900000 ms', true);
    expect(stageFailure({ machine: 'web', stage: 'site', step: 'run', error: timedOut }).hint).toContain("'# lab: timeout=30m' in its header, timeoutSeconds in its definition, or stageLimits.timeoutSeconds");
    const failed = new CommandError({ argv: ['sh'], exitCode: 1, stdout: '', stderr: '', durationMs: 1 }, 'exit code 1');
    expect(stageFailure({ machine: 'web', stage: 'site', step: 'run', error: failed }).hint).not.toContain('timeout');
  });

  it('refuses a TypeScript stage whose timeoutSeconds is not a positive number, naming it (exit 2)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-stages-'));
    mkdirSync(path.join(dir, 'box'));
    const config = validateConfig({ ...defaultLab, stagesDir: dir, zone: { dnsMachine: null }, machines: [{ name: 'box', address: '10.224.0.5', stages: ['site'] }] });
    writeFileSync(path.join(dir, 'box', 'site.mjs'), 'export default { timeoutSeconds: 1800, run: async () => {} };\n');
    expect((await loadLab(config)).machines[0]!.stages.at(-1)!.definition.timeoutSeconds).toBe(1800);
    for (const [i, bad] of ['-5', '0', "'30m'", '1e9'].entries()) {
      // A new file each time: a module once imported is not imported again.
      mkdirSync(path.join(dir, `box${i}`));
      writeFileSync(path.join(dir, `box${i}`, 'site.mjs'), `export default { timeoutSeconds: ${bad} };\n`);
      const named = validateConfig({ ...defaultLab, stagesDir: dir, zone: { dnsMachine: null }, machines: [{ name: `box${i}`, address: '10.224.0.5', stages: ['site'] }] });
      await expect(loadLab(named)).rejects.toThrow(expect.objectContaining({ exitCode: 2, message: expect.stringContaining(`site.mjs: timeoutSeconds: ${bad === "'30m'" ? '"30m"' : bad === '1e9' ? '1000000000' : bad} is not a number of seconds`) }));
    }
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
