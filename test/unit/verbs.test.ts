import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { maxPositionals } from '../../lib/cli/args.js';
import { machineVariables, runRepl } from '../../lib/cli/repl.js';
import { parseCopyRequest } from '../../lib/cli/verbs/cp.js';
import { copyFromMachine, copyToMachine } from '../../lib/engine/copy.js';
import type { Lab } from '../../lib/engine/lab-types.js';
import { AssertionFailure, UsageError } from '../../lib/errors.js';
import type { RunResult } from '../../lib/exec.js';
import { Machine } from '../../lib/machine-verbs.js';
import { ScenarioLab } from '../../lib/scenario/harness.js';
import { type FakeLab, fakeLab } from './fakes.js';

const MACHINES = ['gw', 'web', 'web-silicon'];
const temp = (prefix: string) => mkdtempSync(path.join(tmpdir(), prefix));

describe('lab cp: its two ends', () => {
  it('reads <machine>:<path> as the machine end, anything else as a host path', () => {
    expect(parseCopyRequest(['web:/etc/haproxy/haproxy.cfg', '.'], MACHINES)).toEqual({
      direction: 'from-machine',
      machine: 'web',
      machinePath: '/etc/haproxy/haproxy.cfg',
      localPath: '.',
      machineArgument: 'web:/etc/haproxy/haproxy.cfg',
      localArgument: '.',
    });
    expect(parseCopyRequest(['./x', 'web-silicon:/root/'], MACHINES)).toMatchObject({ direction: 'to-machine', machine: 'web-silicon', machinePath: '/root/', localPath: './x' });
    // A host path with a colon, written so that it is not read as a machine's.
    expect(parseCopyRequest(['./web:x', 'gw:/tmp/'], MACHINES)).toMatchObject({ direction: 'to-machine', machine: 'gw', localPath: './web:x' });
    expect(parseCopyRequest(['/srv/a:b', 'gw:/tmp/'], MACHINES)).toMatchObject({ localPath: '/srv/a:b' });
  });

  it('refuses, naming the argument: an unknown machine, a relative path in the machine, two machines, no machine, a count other than two', () => {
    const refused = (args: string[]) => {
      try {
        parseCopyRequest(args, MACHINES);
      } catch (error) {
        expect(error).toBeInstanceOf(UsageError);
        return (error as UsageError).message;
      }
      throw new Error(`accepted: ${args.join(' ')}`);
    };
    expect(refused(['wbe:/etc/x', '.'])).toBe("wbe:/etc/x: unknown machine 'wbe' (valid: gw, web, web-silicon; did you mean 'web'?)");
    expect(refused(['.', 'web:root/x'])).toBe('web:root/x: the path in the machine must be absolute');
    expect(refused(['web:/a', 'gw:/b'])).toMatch(/between a machine and the host, not between two machines/);
    expect(refused(['./a', './b'])).toMatch(/neither end names a machine/);
    expect(refused(['web:/a'])).toMatch(/^usage: lab cp/);
  });
});

describe('lab repl: the machines as variables', () => {
  it('names each machine by its name, a dashed one in camelCase; a JavaScript word or a taken name gets none', () => {
    expect([...machineVariables(['gw', 'web', 'web-silicon', 'r00p01'], ['lab', 'expect'])]).toEqual([
      ['gw', 'gw'],
      ['web', 'web'],
      ['webSilicon', 'web-silicon'],
      ['r00p01', 'r00p01'],
    ]);
    expect([...machineVariables(['lab', 'new', 'do', 'a-b', 'ab', 'aB'], ['lab'])]).toEqual([
      ['aB', 'a-b'], // the first to take it
      ['ab', 'ab'],
    ]);
  });
});

describe('lab repl: a script on stdin', () => {
  const later = <T>(value: T, ms = 50) => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));
  const script = async (text: string) => {
    const output = new PassThrough();
    let printed = '';
    output.on('data', (chunk: Buffer) => (printed += chunk.toString()));
    const context = {
      later,
      fails: async () => {
        await later(0);
        throw new Error('web: command should have succeeded');
      },
    };
    const code = await runRepl({ context, historyFile: '/nonexistent', banner: 'not shown', input: Readable.from([text]), output });
    return { code, printed };
  };

  it('runs each line once the one before has finished, awaits included; text is printed as it is, without prompts', async () => {
    const { code, printed } = await script("const name = await later('web')\nname\n`${name}\\n`\n{\n  const n = 1;\n  n + 1\n}\nawait later({ a: 1 }, 10)\n");
    expect(printed).toBe("web\nweb\n2\n{ a: 1 }\n");
    expect(code).toBe(0);
  });

  it('stops at the first line that fails, with 1; .exit ends it with 0', async () => {
    const failing = await script("await fails()\nawait later('never run')\n");
    expect(failing.code).toBe(1);
    expect(failing.printed).toContain('web: command should have succeeded');
    expect(failing.printed).not.toContain('never run');
    expect(await script("'one'\n.exit\n'two'\n")).toEqual({ code: 0, printed: 'one\n' });
  });
});

describe('copying files out of and into a machine (a stopped one: its root)', () => {
  let fake: FakeLab;
  let root: string;
  const lab = () => fake.lab as Lab;

  beforeEach(async () => {
    fake = await fakeLab();
    root = fake.lab.dirs.machineRoot('web');
    for (const dir of ['etc', 'root', 'srv/site/sub', 'lab-unit-target']) mkdirSync(path.join(root, dir), { recursive: true });
    writeFileSync(path.join(root, 'etc', 'hostname'), 'web\n');
    writeFileSync(path.join(root, 'srv', 'site', 'index.html'), '<h1>web</h1>\n', { mode: 0o640 });
    writeFileSync(path.join(root, 'srv', 'site', 'sub', 'a.txt'), 'a\n');
    writeFileSync(path.join(root, 'srv', 'site', 'setuid'), '#!/bin/sh\n', { mode: 0o4755 });
    symlinkSync('index.html', path.join(root, 'srv', 'site', 'home.html'));
    execFileSync('mkfifo', [path.join(root, 'srv', 'site', 'fifo')]);
    symlinkSync('/etc', path.join(root, 'abs')); // the machine's /etc, as the machine sees it
    symlinkSync('/lab-unit-target', path.join(root, 'target')); // absolute: a path the host does not have
    symlinkSync('../../../../../../../../../../etc', path.join(root, 'root', 'escape')); // climbs out of the root
  });

  afterEach(async () => {
    await fake.cleanup();
  });

  it('copies a file into a host directory, through a link resolved in the machine', async () => {
    const out = temp('lab-cp-');
    expect(await copyFromMachine(lab(), 'web', '/etc/hostname', out)).toEqual({ to: path.join(out, 'hostname'), files: 1, directories: 0, links: 0, skipped: 0 });
    expect(readFileSync(path.join(out, 'hostname'), 'utf8')).toBe('web\n');
    await copyFromMachine(lab(), 'web', '/abs/hostname', path.join(out, 'named'));
    expect(readFileSync(path.join(out, 'named'), 'utf8')).toBe('web\n'); // not the host's /etc/hostname
  });

  it('copies a tree out: links as links, modes kept but setuid, special files left out', async () => {
    const out = temp('lab-cp-');
    const report = await copyFromMachine(lab(), 'web', '/srv/site', out);
    expect(report).toEqual({ to: path.join(out, 'site'), files: 3, directories: 2, links: 1, skipped: 1 });
    expect(readFileSync(path.join(out, 'site', 'sub', 'a.txt'), 'utf8')).toBe('a\n');
    expect(readlinkSync(path.join(out, 'site', 'home.html'))).toBe('index.html');
    expect(statSync(path.join(out, 'site', 'index.html')).mode & 0o7777).toBe(0o640);
    expect(statSync(path.join(out, 'site', 'setuid')).mode & 0o7777).toBe(0o755);
    expect(existsSync(path.join(out, 'site', 'fifo'))).toBe(false);
  });

  it('refuses a path whose link or `..` climbs out of the root, naming the argument (exit 2)', async () => {
    const out = temp('lab-cp-');
    const from = copyFromMachine(lab(), 'web', '/root/escape/hostname', out, { machineArgument: 'web:/root/escape/hostname', localArgument: out });
    await expect(from).rejects.toThrow(new UsageError("web:/root/escape/hostname: the link /root/escape -> ../../../../../../../../../../etc leads out of the machine's root"));
    await expect(copyFromMachine(lab(), 'web', '/../etc/hostname', out)).rejects.toThrow("web:/../etc/hostname: '..' climbs out of the machine's root");
    writeFileSync(path.join(out, 'x'), 'x\n');
    await expect(copyToMachine(lab(), path.join(out, 'x'), 'web', '/root/escape/')).rejects.toBeInstanceOf(UsageError);
    await expect(copyFromMachine(lab(), 'web', '/etc/nothing', out)).rejects.toThrow(new AssertionFailure('web: /etc/nothing does not exist'));
    await expect(copyFromMachine(lab(), 'wbe', '/etc/hostname', out)).rejects.toThrow("unknown machine 'wbe'");
  });

  it('copies a file into a directory of the machine, or as a new name, replacing a link rather than writing through it', async () => {
    const dir = temp('lab-cp-');
    writeFileSync(path.join(dir, 'x'), 'from the host\n', { mode: 0o600 });
    expect(await copyToMachine(lab(), path.join(dir, 'x'), 'web', '/root/')).toMatchObject({ to: 'web:/root/x', files: 1 });
    expect(readFileSync(path.join(root, 'root', 'x'), 'utf8')).toBe('from the host\n');
    expect(statSync(path.join(root, 'root', 'x')).mode & 0o7777).toBe(0o600);
    await copyToMachine(lab(), path.join(dir, 'x'), 'web', '/srv/site/home.html');
    expect(lstatSync(path.join(root, 'srv', 'site', 'home.html')).isFile()).toBe(true);
    expect(readFileSync(path.join(root, 'srv', 'site', 'index.html'), 'utf8')).toBe('<h1>web</h1>\n');
    await expect(copyToMachine(lab(), path.join(dir, 'x'), 'web', '/no/such/dir/x')).rejects.toThrow('web: no directory /no/such/dir');
  });

  it('copies a tree in, each path resolved in the machine: an absolute link there leads into the root, never to the host', async () => {
    const tree = path.join(temp('lab-cp-'), 'target');
    mkdirSync(path.join(tree, 'sub'), { recursive: true });
    writeFileSync(path.join(tree, 'sub', 'inside'), 'in\n');
    symlinkSync('sub/inside', path.join(tree, 'pointer'));
    // Into /, where the machine has `target` -> /lab-unit-target: the host has no such directory, the machine has.
    expect(await copyToMachine(lab(), tree, 'web', '/')).toEqual({ to: 'web:/target', files: 1, directories: 2, links: 1, skipped: 0 });
    expect(readFileSync(path.join(root, 'lab-unit-target', 'sub', 'inside'), 'utf8')).toBe('in\n');
    expect(readlinkSync(path.join(root, 'lab-unit-target', 'pointer'))).toBe('sub/inside');
    expect(existsSync('/lab-unit-target')).toBe(false);
  });
});

describe('lab.during', () => {
  const scenario = new ScenarioLab({} as Lab);
  const later = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

  it("returns the body's result when the invariant held throughout, checked before, while and after", async () => {
    let checks = 0;
    const result = await scenario.during(() => void checks++, async () => {
      await later(150);
      return 'done';
    }, { every: 10 });
    expect(result).toBe('done');
    expect(checks).toBeGreaterThanOrEqual(4);
  });

  it('fails as soon as the invariant breaks, with what the check said, without waiting for the body', async () => {
    let up = true;
    const started = Date.now();
    const body = async () => {
      await later(30);
      up = false; // the service stops mid-test
      await later(5000);
    };
    await expect(scenario.during(() => {
      if (!up) throw new Error('web: haproxy is inactive');
    }, body, { every: 10 })).rejects.toThrow(/^during: the invariant broke \d+ ms into the body: web: haproxy is inactive$/);
    expect(Date.now() - started).toBeLessThan(2000);
    await expect(scenario.during(() => up, body)).rejects.toThrow('during: the invariant did not hold before the body began: the check returned false');
  });

  it("fails when the invariant is broken at the body's end, and gives the body's own error", async () => {
    let up = true;
    await expect(scenario.during(() => up, () => {
      up = false;
    }, { every: 10_000 })).rejects.toThrow('during: the invariant did not hold when the body ended: the check returned false');
    await expect(scenario.during(() => true, async () => {
      throw new Error('the body failed');
    })).rejects.toThrow('the body failed');
  });
});

describe('changes to machines from scenarios', () => {
  it('are refused outside exclusive scenarios: a checkpoint, a restore, a crash', async () => {
    const refused = /only scenarios under scenarios\/exclusive\/ may change machines/;
    await expect(new ScenarioLab({} as Lab).checkpoint('before')).rejects.toThrow(refused);
    await expect(new ScenarioLab({} as Lab).restore('web@haproxy')).rejects.toThrow(refused);
    const lab = { config: { machines: [{ name: 'web' }] }, dirs: { stateFile: '/nonexistent' } } as unknown as Lab;
    await expect(new ScenarioLab(lab).machine('web').crash()).rejects.toThrow(refused);
  });
});

describe('waiting verbs', () => {
  const answering = (exitCodes: number[], seen: (readonly string[])[] = []) =>
    new Machine('web', async (argv): Promise<RunResult> => {
      seen.push(argv);
      return { argv, exitCode: exitCodes.length > 1 ? exitCodes.shift()! : exitCodes[0]!, stdout: 'out\n', stderr: 'err\n', durationMs: 1 };
    });

  it('waitUntilFails retries until the command fails, and returns its output', async () => {
    const seen: (readonly string[])[] = [];
    expect(await answering([0, 0, 3], seen).waitUntilFails('systemctl is-active haproxy', 10_000)).toBe('out\nerr\n');
    expect(seen).toHaveLength(3);
    await expect(answering([0]).waitUntilFails('true', 300)).rejects.toThrow(/^web: command did not fail within 300 ms\n\$ true\nexit code 0/);
  });

  it('waitForClosedPort waits until a connection is refused; waitForFile until the path exists', async () => {
    const seen: (readonly string[])[] = [];
    await answering([0, 1], seen).waitForClosedPort(443, '10.224.0.2');
    expect(seen.at(-1)).toEqual(['bash', '-c', 'exec 3<>/dev/tcp/10.224.0.2/443']);
    const files: (readonly string[])[] = [];
    await answering([1, 1, 0], files).waitForFile('/run/ready');
    expect(files).toEqual(Array(3).fill(['test', '-e', '/run/ready']));
    await expect(answering([1]).waitForFile('/run/never', 200)).rejects.toThrow(/^web: \/run\/never did not appear within 200 ms/);
  });
});

describe("a verb's arguments", () => {
  it('are counted from its usages: none, some, any number after a ..., or the verb checks them (subcommands)', async () => {
    const { readdirSync } = await import('node:fs');
    const dir = path.join(import.meta.dirname, '..', '..', 'lib', 'cli', 'verbs');
    const most: Record<string, number | undefined> = {};
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      const verb = ((await import(path.join(dir, file))) as { default: { name: string; help: [string][] } }).default;
      most[verb.name] = maxPositionals(verb.name, verb.help.map(([usage]) => usage));
    }
    expect(most).toMatchObject({ down: 0, destroy: 0, status: 0, doctor: 0, snapshots: 0, validate: 0, restore: 1, exec: 1, shell: 1, init: 1, cp: 2, bisect: 2, up: Infinity, test: Infinity, cache: undefined, checkpoint: undefined });
    expect(maxPositionals('exec', ['exec <machine> -- <cmd...>', '--timeout <duration>'])).toBe(1);
  });
});
