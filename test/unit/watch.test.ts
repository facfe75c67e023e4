import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { classifyChanges, machinesNamedIn, scenariosToRun, touchedMachines } from '../../lib/engine/watch.js';
import type { UpReport } from '../../lib/engine/up.js';
import { TreeWatcher } from '../../lib/host/watch.js';
import { FAST, poll } from '../../lib/wait.js';

const machines = ['gw', 'web', 'web-silicon'];
const dir = '/lab/scenarios';
const proxy = `${dir}/proxy.test.ts`;
const dns = `${dir}/dns.test.ts`;
const anyMachine = `${dir}/anything.test.ts`;
const sources: Record<string, string> = {
  [proxy]: "const web = lab.machine('web');\nawait web.succeed(`curl https://silicon.prolo/`);",
  [dns]: 'await lab.machine("gw").succeed("dig web.prolo");',
  [anyMachine]: 'for (const m of lab.machines) await m.succeed("true");',
};
const selected = [proxy, dns, anyMachine];
const run = (files: string[], touched: string[]) => scenariosToRun(selected, classifyChanges(files, dir, new Set(selected)), new Set(touched), machines, (f) => sources[f]!);

describe('lab test --watch: what a cycle runs', () => {
  it('sorts edits into scenarios, what scenarios share, and the lab', () => {
    expect(classifyChanges([proxy, proxy, `${dir}/helpers.ts`, '/lab/stages/web/proxy.ts', '/lab/lab.config.yaml'], dir, new Set(selected))).toEqual({
      scenarios: [proxy],
      scenarioSupport: [`${dir}/helpers.ts`],
      lab: ['/lab/stages/web/proxy.ts', '/lab/lab.config.yaml'],
    });
  });

  it('reads which machines a scenario names, or that it cannot tell', () => {
    expect(machinesNamedIn(sources[proxy]!, machines)).toEqual(new Set(['web']));
    expect(machinesNamedIn(sources[dns]!, machines)).toEqual(new Set(['gw']));
    expect(machinesNamedIn(sources[anyMachine]!, machines)).toBeUndefined();
    expect(machinesNamedIn("lab.machine('web-silicon')", machines)).toEqual(new Set(['web-silicon']));
  });

  it('runs an edited scenario alone, and every one after an edit of what they share', () => {
    expect(run([dns], [])).toEqual([dns]);
    expect(run([`${dir}/helpers.ts`], [])).toEqual(selected);
  });

  it('after a rebuild, runs the scenarios that name a machine it touched, and those that cannot tell', () => {
    expect(run(['/lab/stages/web/proxy.ts'], ['web'])).toEqual([proxy, anyMachine]);
    expect(run(['/lab/stages/gw/dns.ts'], ['gw', 'web'])).toEqual(selected);
    expect(run(['/lab/stages/web/proxy.ts'], [])).toEqual([]); // nothing rebuilt: nothing to run again
  });

  it('counts a machine as touched when a stage of it was built or it booted', () => {
    const machine = (name: string, booted: boolean, action: 'cached' | 'build') => ({ name, booted, failedUnits: [], stages: [{ name: 'system', key: 'k', action }] });
    const report = { machines: [machine('gw', false, 'cached'), machine('web', true, 'cached'), machine('web-silicon', false, 'build')] } as unknown as UpReport;
    expect(touchedMachines(report)).toEqual(new Set(['web', 'web-silicon']));
  });
});

describe('the tree watcher', () => {
  let root: string;
  let watcher: TreeWatcher | undefined;
  afterEach(() => {
    watcher?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('sees edits in directories made after it started, and never in node_modules or what it is told to skip', async () => {
    root = mkdtempSync(path.join(tmpdir(), 'lab-watch-'));
    mkdirSync(path.join(root, 'node_modules', 'x'), { recursive: true });
    mkdirSync(path.join(root, 'state'));
    const seen: string[] = [];
    watcher = new TreeWatcher([root], (file) => seen.push(file), (d) => d === path.join(root, 'state'));
    expect(watcher.directories).toEqual([root]);
    writeFileSync(path.join(root, 'node_modules', 'x', 'index.js'), '');
    writeFileSync(path.join(root, 'state', 'state.json'), '{}');
    mkdirSync(path.join(root, 'stages', 'web'), { recursive: true });
    await poll('the new directories to be watched', () => watcher!.directories.length === 3, { within: 5000, every: FAST });
    writeFileSync(path.join(root, 'stages', 'web', 'proxy.ts'), 'x');
    await poll('the edit to be seen', () => seen.includes(path.join(root, 'stages', 'web', 'proxy.ts')), { within: 5000, every: FAST });
    expect(seen.filter((f) => f.includes('node_modules') || f.includes('state'))).toEqual([]);
  });
});
