/**
 * lab test --watch driven by a test, as a user edits: a stage, then a scenario, then a stage that
 * breaks, then its fix. Each cycle's line says what changed, what was built and what ran; only the
 * edited stage is built again, and only the scenarios that use its machine run.
 */
import { execa, type ResultPromise } from 'execa';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NORMAL, poll } from '../../lib/wait.js';
import { hostTraces, lab, labOk, repoRoot, uniqueName } from './helpers.js';

const name = uniqueName('wtch');
const dir = mkdtempSync(path.join(tmpdir(), 'lab-watch-'));
const config = path.join(dir, 'lab.config.yaml');
const harness = path.join(repoRoot, 'dist', 'lib', 'scenario', 'index.js');
const write = (file: string, content: string) => {
  mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
  writeFileSync(path.join(dir, file), content);
};
const helloStage = (body: string) => `#!/bin/sh\nset -e\n${body}\n`;
const scenario = (machine: string, check: string) =>
  `import { expect, it } from 'vitest';\nimport { useLab } from '${harness}';\nconst lab = await useLab();\nit('${check}', async () => {\n  expect(await lab.machine('${machine}').succeed('${check}')).toMatch(/./);\n});\n`;

let child: ResultPromise<{ reject: false; all: true }> | undefined;
let output = '';
/** The cycle lines printed since `from` (an index into the output). */
const linesFrom = (from: number) => output.slice(from).split('\n').filter((l) => /^\[\d\d:\d\d:\d\d\] /.test(l));
/** Waits for the next cycle line after an edit, and returns it with the lines under it. */
async function nextCycle(edit: () => void): Promise<string> {
  const from = output.length;
  edit();
  await poll('the watch cycle after the edit', () => linesFrom(from).length > 0 && output.endsWith('\n'), { within: 180_000, every: NORMAL });
  return output.slice(from);
}

beforeAll(() => {
  write('lab.config.yaml', [`name: ${name}`, 'zone: { dnsMachine: null }', 'machines:', '  - { name: box, address: 10.224.0.9, stages: [hello] }', '  - { name: other, address: 10.224.0.10 }', ''].join('\n'));
  write('stages/box/hello.sh', helloStage('echo hello one > /etc/hello'));
  write('scenarios/hello.test.ts', scenario('box', 'cat /etc/hello'));
  write('scenarios/other.test.ts', scenario('other', 'hostname'));
});

afterAll(async () => {
  if (child?.pid !== undefined && child.exitCode === null) child.kill('SIGKILL');
  await child;
  await lab(['--config', config, 'destroy']);
  expect(hostTraces(name)).toEqual([]);
});

describe('lab test --watch', () => {
  it('runs a first cycle as lab test does, then one per edit, rebuilding only what changed', async () => {
    child = execa(process.execPath, [path.join(repoRoot, 'bin', 'lab.js'), '--config', config, 'test', '--watch'], { reject: false, all: true, cwd: dir });
    child.all.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await poll('the first cycle', () => linesFrom(0).length > 0, { within: 300_000, every: NORMAL });
    expect(linesFrom(0)[0]).toMatch(/ start · built box@system, box@hello, other@system, booted box, other · ran hello, other: 2 passed, 0 failed · [\d.]+ s$/);

    // The lock is free between cycles: a command that takes it runs at once (without --wait).
    await labOk(['--config', config, 'checkpoint', 'save', 'between-cycles']);
    await labOk(['--config', config, 'checkpoint', 'delete', 'between-cycles']);

    const stageEdit = await nextCycle(() => write('stages/box/hello.sh', helloStage('echo hello two > /etc/hello')));
    expect(stageEdit).toMatch(/stages\/box\/hello\.sh changed · built box@hello, booted box · ran hello: 1 passed, 0 failed/);
    expect(await labOk(['--config', config, 'exec', 'box', '--', 'cat', '/etc/hello'])).toBe('hello two\n');

    const scenarioEdit = await nextCycle(() => write('scenarios/other.test.ts', scenario('other', 'cat /etc/hostname')));
    expect(scenarioEdit).toMatch(/scenarios\/other\.test\.ts changed · ran other: 1 passed, 0 failed/);
    expect(scenarioEdit).not.toContain('built');

    const broken = await nextCycle(() => write('stages/box/hello.sh', helloStage('echo broken >&2; exit 3')));
    expect(broken).toMatch(/stages\/box\/hello\.sh changed · stage box@hello failed \(exit code 3\), log: \S+hello\.log · [\d.]+ s\n  \| broken\n/);
    // As lab up leaves it: the last good root of box is kept, and nothing ran.
    expect(broken).not.toContain('passed');

    const fixed = await nextCycle(() => write('stages/box/hello.sh', helloStage('echo hello three > /etc/hello')));
    expect(fixed).toMatch(/built box@hello, booted box · ran hello: 1 passed, 0 failed/);
    expect(await labOk(['--config', config, 'exec', 'box', '--', 'cat', '/etc/hello'])).toBe('hello three\n');

    // Ctrl-C ends it: the lab keeps running, and its lock is free.
    child.kill('SIGINT');
    expect((await child).exitCode).toBe(130);
    const status = JSON.parse(await labOk(['--config', config, 'status', '--json'])) as { machines: { name: string; state: string }[] };
    expect(status.machines.map((m) => [m.name, m.state])).toEqual([['box', 'running'], ['other', 'running']]);
  });

  it('lab test --debug pauses at a failure with the lab as the test left it, and Enter carries on', async () => {
    write('debug/cut.test.ts', `import { it } from 'vitest';\nimport { useLab } from '${harness}';\nconst lab = await useLab();\nit('fails with box cut off', async () => {\n  await lab.machine('box').block();\n  await lab.machine('box').succeed('test -e /etc/nosuch');\n});\n`);
    const reaches = async () => (await lab(['--config', config, 'exec', 'other', '--', 'ping', '-c', '1', '-W', '1', '10.224.0.9'])).exitCode === 0;
    // A pseudo-terminal, as a user's: script(1) runs lab test in one and passes our input on.
    const command = [process.execPath, path.join(repoRoot, 'bin', 'lab.js'), '--config', config, 'test', '--debug', '--scenarios', path.join(dir, 'debug'), '--reports', path.join(dir, 'reports')].join(' ');
    const debug = execa('script', ['-qefc', command, '/dev/null'], { reject: false, all: true, cwd: dir });
    let shown = '';
    debug.all.on('data', (chunk: Buffer) => (shown += chunk.toString()));
    await poll('the pause at the failure', () => shown.includes('Enter carries on'), { within: 120_000, every: NORMAL });
    expect(shown).toContain('cut.test.ts > fails with box cut off failed:');
    expect(shown).toContain(`lab --config ${config} shell box`);
    expect(shown).toContain(`lab --config ${config} exec box -- sh -c 'test -e /etc/nosuch'   (the command that failed)`);
    expect(await reaches()).toBe(false); // still cut: lab's cleanup of the test waits for Enter
    debug.stdin!.write('\n');
    const result = await debug;
    expect(result.exitCode, result.all).toBe(1);
    expect(result.all).toContain('lab test: 0 passed, 1 failed');
    expect(await reaches()).toBe(true);
  });

  it('refuses --debug without a terminal', async () => {
    const run = await lab(['--config', config, 'test', '--debug']);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain('--debug needs a terminal');
  });

  it('refuses --json, and an unknown scenario, before anything runs', async () => {
    const json = await lab(['--config', config, 'test', '--watch', '--json']);
    expect(json.exitCode).toBe(2);
    expect(json.stderr).toContain('--watch and --json do not go together');
    const unknown = await lab(['--config', config, 'test', '--watch', 'nosuch']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain("unknown scenario 'nosuch'");
  });
});
