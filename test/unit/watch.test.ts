import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { classifyChanges, compileBuiltinStage, failureLine, isNoise, machinesNamedIn, scenariosToRun, touchedMachines } from '../../lib/engine/watch.js';
import type { UpReport } from '../../lib/engine/up.js';
import { stageFailure } from '../../lib/engine/stage-failure.js';
import { UsageError } from '../../lib/errors.js';
import { CommandError } from '../../lib/exec.js';
import { TreeWatcher } from '../../lib/host/watch.js';
import { packageRoot } from '../../lib/paths.js';
import { FAST, poll } from '../../lib/wait.js';

const machines = ['gw', 'web', 'web-silicon'];
const dir = '/lab/scenarios';
const proxy = `${dir}/proxy.test.ts`;
const dns = `${dir}/dns.test.ts`;
const anyMachine = `${dir}/anything.test.ts`;
const sources: Record<string, string> = {
  [proxy]: "const web = lab.machine('web');\nawait web.succeed(`curl https://silicon.prolo/`);",
  [dns]: 'await lab.machine("gw").succeed("dig gw.prolo");',
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
    // Reached through another machine: named in a host name, or in prose.
    expect(machinesNamedIn("await lab.machine('gw').curl(`https://web.${lab.domain}/`);", machines)).toEqual(new Set(['gw', 'web']));
    expect(machinesNamedIn("describe(\"web's proxy\", () => {});", machines)).toEqual(new Set(['web']));
    expect(machinesNamedIn('const webby = gateway;', machines)).toBeUndefined();
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

  it("leaves out what editors and tools write beside a team's files", () => {
    for (const noise of ['.proxy.ts.swp', '.proxy.ts.swx', '4913', '.#proxy.ts', 'proxy.ts~', 'watch.log']) expect(isNoise(`/lab/stages/web/${noise}`), noise).toBe(true);
    for (const edit of ['proxy.ts', 'site.sh', '.env', 'lab.config.yaml', 'haproxy.cfg']) expect(isNoise(`/lab/stages/web/${edit}`), edit).toBe(false);
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

describe("a built-in stage edited in lab's checkout", () => {
  it('is compiled to dist/ as the build does: the same module, loadable as an ES module', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'lab-checkout-'));
    writeFileSync(path.join(root, 'package.json'), JSON.stringify({ type: 'module' }));
    writeFileSync(path.join(root, 'tsconfig.json'), readFileSync(path.join(packageRoot, 'tsconfig.json')));
    mkdirSync(path.join(root, 'stages', 'web'), { recursive: true });
    const source = path.join(root, 'stages', 'web', 'proxy.ts');
    writeFileSync(source, "import path from 'node:path';\nconst name: string = path.basename('/x/proxy');\nexport default { name };\n");
    await compileBuiltinStage(source, root);
    const compiled = path.join(root, 'dist', 'stages', 'web', 'proxy.js');
    expect(((await import(pathToFileURL(compiled).href)) as { default: unknown }).default).toEqual({ name: 'proxy' });
    // The lab's own stage as the whole build (tsc) made it in dist/, byte for byte, source map included.
    writeFileSync(source, readFileSync(path.join(packageRoot, 'stages', 'web', 'proxy.ts')));
    await compileBuiltinStage(source, root);
    for (const file of ['proxy.js', 'proxy.js.map']) {
      expect(readFileSync(path.join(root, 'dist', 'stages', 'web', file), 'utf8')).toBe(readFileSync(path.join(packageRoot, 'dist', 'stages', 'web', file), 'utf8'));
    }
    rmSync(root, { recursive: true, force: true });
  }, 60_000); // typescript itself takes seconds to load on a busy machine
});

describe('failureLine', () => {
  const failed = (argv: string[], exitCode: number, output: string) => ({ argv, exitCode, stdout: output, stderr: '', durationMs: 1 });

  it("says how the stage's command ended, from the error, not from its output", () => {
    const error = stageFailure({ machine: 'box', stage: 'hello', step: 'run', error: new CommandError(failed(['sh', '-c', 'run'], 3, 'step one: exit code 7\n'), 'exit code 3') });
    expect(failureLine(error)).toBe('stage box@hello failed (exit code 3)');
  });

  it('says a timeout as the command said it', () => {
    const error = stageFailure({ machine: 'box', stage: 'hello', step: 'run', error: new CommandError(failed(['sleep', '9'], -1, ''), 'timed out after 5 ms', true) });
    expect(failureLine(error)).toBe('stage box@hello failed (timed out after 5 ms)');
  });

  it('names no exit code for a stage that no command failed, whatever its message quotes', () => {
    const error = stageFailure({ machine: 'box', stage: 'hello', step: 'check', error: new Error('the check expected exit code 0') });
    expect(failureLine(error)).toBe('stage box@hello failed');
  });

  it("says any other error by its summary and hint, without a failed command's argv", () => {
    expect(failureLine(new CommandError(failed(['btrfs', 'subvolume', 'snapshot', '/a', '/b'], 1, 'no space'), 'exit code 1'))).toBe('command failed (exit code 1)');
    expect(failureLine(new UsageError('no scenario nope', 'lab test --list'))).toBe('no scenario nope (lab test --list)');
  });
});
