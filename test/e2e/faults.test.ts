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
import { delay, FAST, poll } from '../../lib/wait.js';
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
      `import { expect, it } from 'vitest';\nimport { useLab } from '${path.join(repoRoot, 'lib', 'scenario', 'harness.js')}';\nconst lab = await useLab();\nit('sees its machines throughout', async () => {\n  for (let i = 0; i < 20; i++) expect(await lab.machine('a').succeed('cat /etc/mark')).toBe('a\\n');\n});\n`,
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
