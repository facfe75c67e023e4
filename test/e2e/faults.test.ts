/**
 * Crash consistency under fault injection, permissions, bad configs, a full pool and a concurrent
 * lab up. The kills are driven by a seeded random generator (SEED below): the same seed gives the
 * same kill points, so a failing trial can be run again as it was.
 */
import { execa, type ResultPromise } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findProcesses, processesWithEnvironment } from '../../lib/host/procs.js';
import { delay, FAST, NORMAL, poll } from '../../lib/wait.js';
import { asNobody, hostTraces, lab, labOk, repoRoot, STATE_ROOT, uniqueName } from './helpers.js';

const SEED = 20261123;
const UP_TRIALS = 8;
const QUEUED_TRIALS = 3;
const RESTORE_TRIALS = 10;

/** mulberry32: a small seeded generator, enough to pick kill points. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const made: string[] = [];
afterAll(async () => {
  for (const config of made) await lab(['--config', config, 'destroy']);
});

/** Two machines that install a package each (so one queues on the shared install lock) and write a file. */
function twoMachineLab(name: string, extra: string[] = []): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'lab-faults-'));
  for (const machine of ['a', 'b']) {
    mkdirSync(path.join(dir, 'stages', machine), { recursive: true });
    writeFileSync(path.join(dir, 'stages', machine, 'pkg.mjs'), "export default { packages: ['less'] };\n");
    writeFileSync(path.join(dir, 'stages', machine, 'mark.mjs'), `export default { async run(ctx) { await ctx.writeFile('/etc/mark', '${machine}\\n'); } };\n`);
  }
  const config = path.join(dir, 'lab.config.yaml');
  writeFileSync(
    config,
    [`name: ${name}`, 'stagesDir: stages', 'zone: { dnsMachine: null }', ...extra, 'machines:', '  - { name: a, address: 10.224.0.2, stages: [pkg, mark] }', '  - { name: b, address: 10.224.0.3, stages: [pkg, mark] }', ''].join('\n'),
  );
  made.push(config);
  return config;
}

function startLab(args: string[]): ResultPromise {
  return execa(process.execPath, [path.join(repoRoot, 'bin', 'lab.js'), ...args], { reject: false, stdin: 'ignore' });
}

/** Processes whose argv mentions this lab's state directory, by what they are. */
function labProcesses(name: string): { flock: number; nspawn: number } {
  const needle = `${path.join(STATE_ROOT, name)}/`;
  const found = { flock: 0, nspawn: 0 };
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (!argv.some((a) => a.includes(needle))) continue;
      if (argv[0] === 'flock') found.flock++;
      if (argv[0]?.endsWith('systemd-nspawn')) found.nspawn++;
    } catch {
      // gone
    }
  }
  return found;
}

/** What a crash may leave in the pool: unfinished copies and half-done restores. */
function poolDebris(name: string): string[] {
  const pool = path.join(STATE_ROOT, name, 'pool');
  const debris: string[] = [];
  for (const dir of ['machines', 'images', ...['a', 'b'].map((m) => `snapshots/${m}`)]) {
    const full = path.join(pool, dir);
    if (!existsSync(full)) continue;
    for (const entry of readdirSync(full)) if (/\.(partial|incoming|outgoing)$/.test(entry)) debris.push(`${dir}/${entry}`);
  }
  return debris;
}

async function expectRecovered(config: string, name: string): Promise<void> {
  const up = await lab(['--config', config, 'up', '--json']);
  expect(up.exitCode, `${up.stdout}\n${up.stderr}`).toBe(0);
  expect(poolDebris(name)).toEqual([]);
  const doctor = JSON.parse(await labOk(['--config', config, 'doctor', '--json'])) as { leftovers: string[] };
  expect(doctor.leftovers.filter((l) => /build step|interrupted|unfinished/.test(l))).toEqual([]);
  const status = JSON.parse(await labOk(['--config', config, 'status', '--json'])) as { machines: { name: string; state: string; stagesPending: string[] }[] };
  const consoleTail = (machine: string) => readFileSync(path.join(STATE_ROOT, name, 'logs', machine, 'console.log'), 'utf8').split('\n').slice(-12).join('\n');
  expect(status.machines.map((m) => `${m.name}:${m.state}:${m.stagesPending.join(',')}`), `${up.stdout}\n${consoleTail('a')}\n${consoleTail('b')}`).toEqual(['a:running:', 'b:running:']);
  expect(await labOk(['--config', config, 'exec', 'a', '--', 'cat', '/etc/mark'])).toBe('a\n');
}

describe('fault injection: kill -9 at seeded random points', () => {
  const name = uniqueName('kill');
  const config = twoMachineLab(name);
  const next = random(SEED);
  const log: string[] = [];

  it(`recovers from ${UP_TRIALS} kills of lab up --no-cache (${QUEUED_TRIALS} while an install is queued on the lock)`, async () => {
    const first = Date.now();
    await labOk(['--config', config, 'up', '--no-cache']);
    const fullRunMs = Date.now() - first;
    for (let trial = 0; trial < UP_TRIALS; trial++) {
      const queued = trial < QUEUED_TRIALS;
      const child = startLab(['--config', config, 'up', '--no-cache']);
      const started = Date.now();
      let point: string;
      if (queued) {
        // Both machines install at once: the second waits on the shared lock in a flock of its own.
        const queuedInstalls = () => {
          const { flock } = labProcesses(name);
          return flock >= 2 && flock;
        };
        const flocks = await poll('two installs on the shared lock', queuedInstalls, { within: 60_000, every: FAST });
        point = `with ${flocks} installs on the lock`;
      } else {
        const wait = Math.floor(next() * fullRunMs);
        await delay(wait);
        point = `after ${wait} ms`;
      }
      child.kill('SIGKILL');
      await child;
      log.push(`lab up killed ${point} (${Date.now() - started} ms in)`);
      await expectRecovered(config, name);
    }
    console.log(`fault injection (seed ${SEED}):\n${log.join('\n')}`);
  });

  it('boots again a machine that a killed command left on its way down', async () => {
    // What lab restore leaves when killed right after asking a machine to stop: nspawn and the
    // container's init still alive, shutting down. lab up must not take it for a running machine.
    const status = JSON.parse(await labOk(['--config', config, 'status', '--json'])) as { machines: { name: string; pid?: number }[] };
    const pid = status.machines.find((m) => m.name === 'a')?.pid;
    expect(pid).toBeGreaterThan(1);
    process.kill(pid!, 'SIGTERM'); // nspawn's orderly shutdown
    const up = JSON.parse(await labOk(['--config', config, 'up', '--json'])) as { machines: { name: string; booted: boolean }[] };
    expect(up.machines.map((m) => `${m.name}:${m.booted}`)).toEqual(['a:true', 'b:false']);
    await expectRecovered(config, name);
    log.push('machine a stopping when lab up ran');
  });

  it(`recovers from ${RESTORE_TRIALS} kills of lab restore`, async () => {
    for (let trial = 0; trial < RESTORE_TRIALS; trial++) {
      const ref = trial % 2 === 0 ? 'a@pkg' : 'pkg';
      const child = startLab(['--config', config, 'restore', ref]);
      const wait = Math.floor(next() * 700);
      await delay(wait);
      child.kill('SIGKILL');
      await child;
      log.push(`lab restore ${ref} killed after ${wait} ms`);
      await expectRecovered(config, name);
    }
    await labOk(['--config', config, 'destroy']);
    expect(hostTraces(name)).toEqual([]);
  });
});

describe('kill -9 while the pool is being made', () => {
  it('leaves no unformatted pool behind: the next lab up makes it anew', async () => {
    const name = uniqueName('pool');
    const config = twoMachineLab(name);
    const child = startLab(['--config', config, 'up']);
    const partial = path.join(STATE_ROOT, name, 'pool.img.partial');
    await poll('the pool to be made under a temporary name until formatted', () => existsSync(partial), { within: 30_000, every: FAST });
    child.kill('SIGKILL');
    await child;
    await expectRecovered(config, name);
    expect(existsSync(partial)).toBe(false);
  });
});

describe('signals', () => {
  it('SIGINT to lab up ends its commands, releases the lock and says so; the next lab up resumes', async () => {
    const name = uniqueName('sig');
    const config = twoMachineLab(name);
    const child = startLab(['--config', config, 'up']);
    await poll('lab up to start a build step', () => labProcesses(name).nspawn > 0, { within: 60_000, every: FAST });
    child.kill('SIGINT');
    const result = await child;
    expect(result.exitCode).toBe(130);
    expect(result.stderr).toMatch(/lab: interrupted by SIGINT: ended \d+ running command\(s\), released the lab's lock/);
    expect(existsSync(path.join(STATE_ROOT, name, 'lock'))).toBe(false);
    await expectRecovered(config, name);
  });
});

describe('permissions: other users of the host', () => {
  it('cannot read the pool, the roots, the logs, or hold the install lock', async () => {
    const name = uniqueName('perm');
    const config = twoMachineLab(name);
    await labOk(['--config', config, 'up']);
    const state = path.join(STATE_ROOT, name);
    for (const file of [path.join(state, 'pool.img'), path.join(state, 'pool', 'machines', 'a', 'etc', 'mark'), path.join(state, 'logs', 'a', 'mark.log')]) {
      expect(existsSync(file), file).toBe(true);
      const read = await asNobody(['cat', file]);
      expect(read.exitCode, `${file} is readable by nobody`).not.toBe(0);
      expect(read.stderr).toContain('Permission denied');
    }
    const lock = readdirSync('/var/cache/lab/packages').map((d) => path.join('/var/cache/lab/packages', d, '.lab-install.lock')).find(existsSync)!;
    const hold = await asNobody(['flock', '-n', lock, 'true']);
    expect(hold.exitCode).not.toBe(0);
    for (const dir of [state, '/var/cache/lab']) expect((await asNobody(['ls', dir])).exitCode).not.toBe(0);
  });
});

describe('config errors are found before the host is touched', () => {
  it('a dependency cycle and a subnet octet over 255 exit 2, naming the field, with no trace', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-bad-'));
    const cycle = uniqueName('cyc');
    writeFileSync(path.join(dir, 'cycle.yaml'), `name: ${cycle}\nzone: { dnsMachine: null }\nmachines:\n  - { name: a, address: 10.224.0.2, dependsOn: [b] }\n  - { name: b, address: 10.224.0.3, dependsOn: [a] }\n`);
    const result = await lab(['--config', path.join(dir, 'cycle.yaml'), 'up']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('dependency cycle a -> b -> a');
    expect(hostTraces(cycle)).toEqual([]);
    const octets = uniqueName('oct');
    writeFileSync(path.join(dir, 'octets.yaml'), `name: ${octets}\nzone: { subnet: 999.224.0.0/24 }\n`);
    const bad = await lab(['--config', path.join(dir, 'octets.yaml'), 'up']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('zone.subnet: each octet must be at most 255');
    expect(hostTraces(octets)).toEqual([]);
  });
});

describe('a full pool', () => {
  it('is named as such, with its figures and what to do, and lab up refuses to boot on it', async () => {
    const name = uniqueName('full');
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-full-'));
    mkdirSync(path.join(dir, 'stages', 'solo'), { recursive: true });
    writeFileSync(path.join(dir, 'stages', 'solo', 'fill.mjs'), "export default { async run(ctx) { await ctx.exec(['sh', '-c', 'head -c 900M /dev/zero > /big']); } };\n");
    const config = path.join(dir, 'lab.config.yaml');
    writeFileSync(config, `name: ${name}\nstagesDir: stages\nstorage: { poolSize: 700M }\nzone: { dnsMachine: null }\nmachines:\n  - { name: solo, address: 10.224.0.9, stages: [fill] }\n`);
    made.push(config);
    const first = await lab(['--config', config, 'up']);
    expect(first.exitCode).toBe(1);
    expect(first.stderr).toMatch(/stage solo@fill failed: the pool is full: \d+ MiB of \d+ MiB used \(\d+ MiB free\)/);
    expect(first.stderr).toContain('storage.poolSize');
    const again = await lab(['--config', config, 'up']);
    expect(again.exitCode).toBe(3);
    expect(again.stderr).toMatch(/^lab: the pool is full: /);
    expect(again.stderr).not.toMatch(/at .*\.js:\d+/); // no stack trace
    await labOk(['--config', config, 'destroy']);
    expect(hostTraces(name)).toEqual([]);
  });
});

describe('lab test holds the lock for its whole run', () => {
  it('a lab up started during the scenarios is refused, and the run passes', async () => {
    const name = uniqueName('lock');
    const config = twoMachineLab(name);
    const scenarios = mkdtempSync(path.join(tmpdir(), 'lab-scen-'));
    // A scenario that lasts long enough for the lab up below to try.
    writeFileSync(
      path.join(scenarios, 'slow.test.ts'),
      `import { expect, it } from 'vitest';\nimport { useLab } from '${path.join(repoRoot, 'dist', 'lib', 'scenario', 'index.js')}';\nconst lab = await useLab();\nit('sees its machines throughout', async () => {\n  for (let i = 0; i < 20; i++) expect(await lab.machine('a').succeed('cat /etc/mark')).toBe('a\\n');\n});\n`,
    );
    await labOk(['--config', config, 'up']);
    const test = startLab(['--config', config, 'test', '--scenarios', scenarios, '--reports', path.join(scenarios, 'reports')]);
    const lockFile = path.join(STATE_ROOT, name, 'lock');
    await poll('lab test to hold the lock', () => existsSync(lockFile) && readFileSync(lockFile, 'utf8').includes('"command":"test"'), { within: 60_000, every: FAST });
    const up = await lab(['--config', config, 'up', '--no-cache']);
    expect(up.exitCode).toBe(3);
    expect(up.stderr).toContain("this lab is busy: 'lab test'");
    const result = await test;
    expect(result.exitCode, `${result.stdout}\n${result.stderr}`).toBe(0);
  });
});

const CHECKPOINT_TRIALS = 5;
const BISECT_KILLS = 3;
const BISECT_SIGINTS = 2;
const TEST_KILLS = 3;
const UPGRADE_KILLS = 2;

/** Processes with `needle` in their argv (its words joined by NULs). */
function processesWith(needle: string): number[] {
  return findProcesses((argv) => argv.join('\0').includes(needle)).map((p) => p.process.pid);
}

describe('fault injection: the debugging verbs killed at seeded points', () => {
  const name = uniqueName('kdbg');
  const config = twoMachineLab(name);
  const dir = path.dirname(config);
  const next = random(SEED + 1);
  const log: string[] = [];
  const scenario = (file: string, body: string) => {
    const scenarios = path.join(dir, path.dirname(file));
    mkdirSync(scenarios, { recursive: true });
    writeFileSync(path.join(dir, file), `import { expect, it } from 'vitest';\nimport { useLab } from '${path.join(repoRoot, 'dist', 'lib', 'scenario', 'index.js')}';\nconst lab = await useLab();\n${body}\n`);
    return scenarios;
  };
  const checkpointsDir = path.join(STATE_ROOT, name, 'pool', 'checkpoints');
  const bisectCheckpoints = () => (existsSync(checkpointsDir) ? readdirSync(checkpointsDir).filter((f) => f.startsWith('lab-bisect-')) : []);
  const status = async () => JSON.parse(await labOk(['--config', config, 'status', '--json'])) as { machines: { name: string; state: string; rootStage?: string }[] };
  afterAll(() => console.log(`fault injection of the debugging verbs (seed ${SEED + 1}):\n${log.join('\n')}`));

  it(`thaws what a checkpoint save killed while machines were frozen left frozen (${CHECKPOINT_TRIALS} trials)`, async () => {
    await labOk(['--config', config, 'up']);
    const frozenFile = path.join(STATE_ROOT, name, 'frozen.json');
    let hit = 0;
    for (let trial = 0; trial < CHECKPOINT_TRIALS; trial++) {
      const child = startLab(['--config', config, 'checkpoint', 'save', `t${trial}`]);
      const extra = Math.floor(next() * 20);
      const frozen = await poll('the machines to be frozen', () => existsSync(frozenFile) || child.exitCode !== null, { within: 30_000, every: 1 });
      if (extra) await delay(extra);
      const whileFrozen = existsSync(frozenFile);
      child.kill('SIGKILL');
      await child;
      if (whileFrozen) hit++;
      const opened = await lab(['--config', config, 'status', '--json']);
      expect(opened.exitCode).toBe(0);
      if (whileFrozen) expect(opened.stderr).toContain("thawed a, b: 'lab checkpoint save");
      // A frozen machine runs nothing: exec would time out.
      expect((await lab(['--config', config, 'exec', '--timeout', '10s', 'a', '--', 'true'])).exitCode).toBe(0);
      expect((await lab(['--config', config, 'exec', '--timeout', '10s', 'b', '--', 'true'])).exitCode).toBe(0);
      const doctor = JSON.parse(await labOk(['--config', config, 'doctor', '--json'])) as { problems: string[]; leftovers: string[] };
      expect(doctor.problems.filter((p) => p.includes('frozen'))).toEqual([]);
      expect(doctor.leftovers.filter((l) => l.includes('interrupted'))).toEqual([]);
      log.push(`checkpoint save killed ${whileFrozen ? `while frozen (${extra} ms after freezing)` : `after it ended (${frozen ? 'done' : '?'})`}: machines answer`);
    }
    expect(hit).toBeGreaterThan(0);
  });

  it(`puts the lab back after a bisect killed (${BISECT_KILLS}) or interrupted (${BISECT_SIGINTS})`, async () => {
    const scenarios = scenario('bisect/marked.test.ts', "it('finds a marked', async () => { expect(await lab.machine('a').succeed('cat /etc/mark')).toBe('a\\n'); });");
    for (let trial = 0; trial < BISECT_KILLS + BISECT_SIGINTS; trial++) {
      const signal = trial < BISECT_KILLS ? 'SIGKILL' : 'SIGINT';
      await labOk(['--config', config, 'exec', 'a', '--', 'sh', '-c', `echo ${trial} > /root/before-bisect`]);
      const child = startLab(['--config', config, 'bisect', 'marked', 'a', '--scenarios', scenarios]);
      await poll('the bisect to save its way back', () => bisectCheckpoints().length > 0, { within: 60_000, every: FAST });
      const wait = Math.floor(next() * 4000);
      await delay(wait);
      child.kill(signal);
      const result = await child;
      if (signal === 'SIGINT') {
        expect(result.exitCode, String(result.stderr)).toBe(130);
        expect(bisectCheckpoints(), String(result.stderr)).toEqual([]); // put back by the interrupted bisect itself
      }
      const after = await status(); // the next command finishes a put-back that a killed bisect left
      expect(bisectCheckpoints()).toEqual([]);
      expect(after.machines.map((m) => `${m.name}:${m.state}`)).toEqual(['a:running', 'b:running']);
      expect(await labOk(['--config', config, 'exec', 'a', '--', 'cat', '/root/before-bisect', '/etc/mark'])).toBe(`${trial}\na\n`);
      log.push(`bisect ${signal === 'SIGKILL' ? 'killed' : 'interrupted'} ${wait} ms after its checkpoint: put back`);
    }
  });

  it(`undoes the link faults, and ends the scenario workers and captures, of a lab test killed (${TEST_KILLS} trials)`, async () => {
    const scenarios = scenario(
      'faulty/hold.test.ts',
      "it('holds b cut and a delayed', async () => {\n  await lab.machine('b').block();\n  await lab.machine('a').impair({ delayMs: 200 });\n  await lab.machine('a').succeed('sleep 171', { timeout: 120_000 });\n});",
    );
    const faultsDir = path.join(STATE_ROOT, name, 'faults');
    for (let trial = 0; trial < TEST_KILLS; trial++) {
      const reports = path.join(dir, `reports-${trial}`);
      const child = startLab(['--config', config, 'test', '--scenarios', scenarios, '--reports', reports, '--capture']);
      await poll('the scenario to hold its faults', () => existsSync(faultsDir) && readdirSync(faultsDir).length === 2 && processesWith('sleep\u0000171').length > 0, { within: 60_000, every: FAST });
      const wait = Math.floor(next() * 1000);
      await delay(wait);
      child.kill('SIGKILL');
      await child;
      // Scenario workers (vitest's, with lab test's environment: machines lab test booted have it too), the command they ran in a, their tcpdumps.
      const workers = () => processesWithEnvironment(`LAB_TEST_NAME=${name}`).filter((pid) => processesWith('vitest').includes(pid));
      const leaked = () => [...workers(), ...processesWith('sleep\u0000171'), ...processesWith(`${reports}/`)];
      // The relay that delays a's link is a fault: the next lab command ends it (below).
      const relays = () => processesWith(`${path.join(STATE_ROOT, name, 'relays')}/`);
      const gone = await poll('the workers, their commands and tcpdump to end', () => leaked().length === 0, { within: 10_000, every: NORMAL }).catch(() => false);
      const argvOf = (pid: number) => (existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ') : '(gone)');
      expect(gone, `left running: ${leaked().map((pid) => `${pid} ${argvOf(pid)}`).join('; ')}`).toBe(true);
      const up = JSON.parse(await labOk(['--config', config, 'up', '--json'])) as { recovered: string[] };
      expect(up.recovered.filter((r) => /link .* by a scenario worker/.test(r))).toHaveLength(2);
      const tables = await execa('ip', ['netns', 'exec', `lab-${name}`, 'nft', 'list', 'tables', 'bridge']);
      expect(tables.stdout).toBe('');
      expect(relays()).toEqual([]);
      const links = (await execa('ip', ['-n', `lab-${name}`, '-o', 'link', 'show'])).stdout;
      expect(links).not.toMatch(/: lr[0-9a-f]{8}[rb]@/);
      const rtt = Number(/time=([0-9.]+) ms/.exec(await labOk(['--config', config, 'exec', 'b', '--', 'ping', '-c', '1', '-W', '3', '10.224.0.2']))?.[1]);
      expect(rtt).toBeLessThan(100);
      log.push(`lab test killed ${wait} ms into its faults: workers, commands and tcpdump gone; faults undone by the next lab up`);
    }
  });

  it(`ends the build step of a lab image upgrade killed (${UPGRADE_KILLS} trials) before the next command touches the image`, async () => {
    const partial = path.join(STATE_ROOT, name, 'pool', 'images', 'upgrade.partial');
    for (let trial = 0; trial < UPGRADE_KILLS; trial++) {
      const child = startLab(['--config', config, 'image', 'upgrade']);
      await poll('the upgrade to run in its clone', () => processesWith(`--directory=${partial}`).length > 0, { within: 120_000, every: FAST });
      const wait = Math.floor(next() * 2000);
      await delay(wait);
      child.kill('SIGKILL');
      await child;
      const strays = processesWith(`--directory=${partial}`).length;
      const up = await lab(['--config', config, 'up']);
      expect(up.exitCode, up.stderr).toBe(0);
      expect(processesWith(`--directory=${partial}`)).toEqual([]);
      expect(existsSync(partial)).toBe(false);
      log.push(`lab image upgrade killed ${wait} ms into its build step (${strays} of its processes still running): ended by the next lab up`);
    }
    await labOk(['--config', config, 'destroy']);
    expect(hostTraces(name)).toEqual([]);
  });
});
