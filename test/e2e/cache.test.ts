import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CacheManifest } from '../../lib/cache/manifest.js';
import type { PullReport, PushReport } from '../../lib/engine/cache.js';
import { FAST, poll } from '../../lib/wait.js';
import { hostTraces, lab, labOk, repoRoot, uniqueName } from './helpers.js';

/**
 * Two labs standing for two runners: other names, other state directories, and the second with a
 * cache directory of its own (no base image tarball to import): what it has comes from the cache.
 */
const work = mkdtempSync(path.join(tmpdir(), 'lab-cache-e2e-'));
const stagesDir = path.join(work, 'stages');
const cache = path.join(work, 'cache');
const stage = (name: string, marker: string) => writeFileSync(path.join(stagesDir, 'solo', `${name}.mjs`), `export default { async run(ctx) { await ctx.writeFile('/etc/${name}-marker', '${marker}\\n'); } };\n`);
mkdirSync(path.join(stagesDir, 'solo'), { recursive: true });
stage('ok', 'ok');
stage('extra', 'extra');

function labConfig(name: string, extra: string[] = []): { name: string; file: string; stateRoot: string } {
  const stateRoot = path.join(work, `state-${name}`);
  const file = path.join(work, `${name}.yaml`);
  writeFileSync(file, [`name: ${name}`, `stateDir: ${stateRoot}`, ...extra, `stagesDir: ${stagesDir}`, 'zone: { dnsMachine: null }', 'machines:', '  - { name: solo, address: 10.224.0.9, stages: [ok, extra] }', ''].join('\n'));
  return { name, file, stateRoot };
}
const first = labConfig(uniqueName('ccha'));
const second = labConfig(uniqueName('cchb'), [`cacheDir: ${path.join(work, 'runner-cache')}`]);
const on = (which: { file: string }) => (...args: string[]) => labOk(['--config', which.file, ...args]);
const [inFirst, inSecond] = [on(first), on(second)];

interface UpJson {
  baseImage: string;
  machines: { stages: { name: string; action: string }[] }[];
}
const built = (report: UpJson) => report.machines.flatMap((m) => m.stages.filter((s) => s.action === 'build').map((s) => s.name));
const pulled = (report: PullReport) => report.objects.map((o) => `${o.name}:${o.action}`);

/** Runs a lab command and kills it (SIGKILL) as soon as `started` holds; returns once it is dead. */
async function killWhen(which: { file: string }, args: string[], what: string, started: () => boolean): Promise<void> {
  const child = execa(process.execPath, [path.join(repoRoot, 'bin', 'lab.js'), '--config', which.file, ...args], { reject: false });
  await poll(what, started, { within: 60_000, every: FAST });
  child.kill('SIGKILL');
  await child;
}

afterAll(async () => {
  for (const which of [first, second]) {
    await lab(['--config', which.file, 'destroy']);
    expect(hostTraces(which.name, which.stateRoot)).toEqual([]);
  }
  rmSync(work, { recursive: true, force: true });
});

describe('the stage cache, from one runner to another', () => {
  it('travels: the second lab pulls what the first pushed and builds nothing; an edited stage rebuilds from itself only; a corrupted object is refused', async () => {
    expect(built(JSON.parse(await inFirst('up', '--json')) as UpJson)).toEqual(['system', 'ok', 'extra']);
    const key = (await inFirst('cache', 'key')).trim();
    expect((await inSecond('cache', 'key')).trim()).toBe(key); // other names, other state: the same snapshots

    // A push killed in the middle leaves no manifest, and under an object's name only a whole object (its name holds its digest).
    const killed = path.join(work, 'killed-push');
    await killWhen(first, ['cache', 'push', killed], 'an object being written', () => existsSync(path.join(killed, 'objects')) && readdirSync(path.join(killed, 'objects')).some((f) => f.endsWith('.partial')));
    expect(existsSync(path.join(killed, 'manifest.json'))).toBe(false);
    for (const object of readdirSync(path.join(killed, 'objects'), { recursive: true }).map(String).filter((f) => f.endsWith('.btrfs'))) {
      const digest = createHash('sha256').update(readFileSync(path.join(killed, 'objects', object))).digest('hex');
      expect(object).toMatch(new RegExp(`-${digest.slice(0, 16)}\\.btrfs$`));
    }

    const pushed = JSON.parse(await inFirst('cache', 'push', cache, '--json')) as PushReport;
    expect(pushed.objects.map((o) => `${o.name}:${o.action}`)).toEqual([expect.stringMatching(/^base@[0-9a-f]+:written$/), 'solo@system:written', 'solo@ok:written', 'solo@extra:written']);
    const manifest = JSON.parse(readFileSync(path.join(cache, 'manifest.json'), 'utf8')) as CacheManifest;
    expect(manifest.objects.map((o) => Boolean(o.parentIdentity))).toEqual([false, true, true, true]); // incremental on what each is built on

    // A pull killed while it receives leaves nothing in place; the next command repairs its staging.
    const staging = path.join(second.stateRoot, second.name, 'pool', 'cache-pull.partial');
    await killWhen(second, ['cache', 'pull', cache], 'the pull to receive', () => existsSync(staging));
    const afterKill = JSON.parse(await inSecond('cache', 'pull', cache, '--json')) as PullReport;
    expect(pulled(afterKill)).toEqual([expect.stringMatching(/^base@[0-9a-f]+:imported$/), 'solo@system:imported', 'solo@ok:imported', 'solo@extra:imported']);
    expect(existsSync(staging)).toBe(false);

    const up = JSON.parse(await inSecond('up', '--json')) as UpJson;
    expect(built(up)).toEqual([]);
    expect(up.baseImage).toBe('pool'); // pulled too: no tarball in its cache directory, no debootstrap
    expect(await inSecond('exec', 'solo', '--', 'cat', '/etc/ok-marker', '/etc/extra-marker')).toBe('ok\nextra\n');

    stage('ok', 'ok, edited');
    expect(built(JSON.parse(await inSecond('up', '--json')) as UpJson)).toEqual(['ok', 'extra']);
    const again = JSON.parse(await inSecond('cache', 'push', cache, '--json')) as PushReport;
    expect(again.objects.map((o) => o.action)).toEqual(['kept', 'kept', 'written', 'written']); // the base and system were the first lab's

    // Back to the first lab, with the object of `extra` altered: `ok` comes in (on the first lab's own
    // system, which the second lab's was received from), `extra` is refused and built.
    const edited = JSON.parse(readFileSync(path.join(cache, 'manifest.json'), 'utf8')) as CacheManifest;
    const extra = edited.objects.find((o) => o.kind === 'stage' && o.stage === 'extra')!;
    const file = path.join(cache, 'objects', 'solo', readdirSync(path.join(cache, 'objects', 'solo')).find((f) => f.startsWith(`extra@${extra.key}-`))!);
    const bytes = readFileSync(file);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(file, bytes);
    const refused = JSON.parse(await inFirst('cache', 'pull', cache, '--json')) as PullReport;
    expect(pulled(refused)).toEqual(['solo@ok:imported', 'solo@extra:refused']);
    expect(refused.objects[1]!.reason).toMatch(/is altered \(its sha256 is not the manifest's\)/);
    expect(await inFirst('cache', 'pull', cache)).toMatch(/REFUSED solo@extra: .*; not used: lab up builds it/);
    expect(built(JSON.parse(await inFirst('up', '--json')) as UpJson)).toEqual(['extra']);
    expect(await inFirst('exec', 'solo', '--', 'cat', '/etc/ok-marker', '/etc/extra-marker')).toBe('ok, edited\nextra\n');
  });

  it('lab test --shard 1/2 and 2/2 split the scenario files between them, and lab report merge counts every test once', async () => {
    const scenarios = path.join(work, 'scenarios');
    mkdirSync(path.join(scenarios, 'exclusive'), { recursive: true });
    const harness = path.join(repoRoot, 'lib', 'scenario', 'harness.js');
    const scenario = (name: string, tests: string[]) =>
      writeFileSync(path.join(scenarios, `${name}.test.ts`), [`import { expect, it } from 'vitest';`, `import { useLab } from '${harness}';`, 'const lab = await useLab();', ...tests, ''].join('\n'));
    scenario('alpha', [
      "it('has the marker', async () => expect(await lab.machine('solo').succeed('cat /etc/ok-marker')).toBe('ok, edited\\n'));",
      "it('is named', async () => expect(await lab.machine('solo').succeed('hostname')).toBe('solo\\n'));",
    ]);
    scenario('beta', ["it('has the extra marker', async () => expect(lab.machine('solo')).toHaveFile('/etc/extra-marker'));"]);
    scenario('exclusive/gamma', ["it('runs systemd', async () => lab.machine('solo').waitForUnit('systemd-networkd'));"]);

    for (const bad of ['0/2', '3/2', 'a/b']) {
      const run = await lab(['--config', second.file, 'test', '--shard', bad, '--scenarios', scenarios]);
      expect([bad, run.exitCode, run.stderr]).toEqual([bad, 2, expect.stringContaining(`--shard ${bad}: use i/n`)]);
    }
    const shards = [];
    for (const shard of ['1/2', '2/2']) {
      const reports = path.join(work, `reports-${shard.replace('/', '-of-')}`);
      const report = JSON.parse(await inSecond('test', '--shard', shard, '--scenarios', scenarios, '--reports', reports, '--json')) as { shard: string; passed: number; scenarios: { name: string }[] };
      expect(report.shard).toBe(shard);
      shards.push({ reports, names: report.scenarios.map((s) => s.name), passed: report.passed });
    }
    expect(shards.flatMap((s) => s.names).sort()).toEqual(['alpha', 'beta', 'exclusive/gamma']); // each once
    expect(shards.every((s) => s.names.length > 0)).toBe(true);

    const merged = path.join(work, 'merged');
    const report = JSON.parse(await labOk(['report', 'merge', ...shards.map((s) => s.reports), '-o', merged, '--json'])) as { passed: number; failed: number; scenarios: { name: string }[] };
    expect([report.passed, report.failed]).toEqual([4, 0]);
    expect(report.passed).toBe(shards[0]!.passed + shards[1]!.passed);
    expect(report.scenarios.map((s) => s.name)).toEqual(['alpha', 'beta', 'exclusive/gamma']);
    expect(readFileSync(path.join(merged, 'junit.xml'), 'utf8').match(/<testcase /g)).toHaveLength(4);
    expect(readFileSync(path.join(merged, 'report.tap'), 'utf8')).toMatch(/\n1\.\.4\n$/);
    expect(readFileSync(path.join(merged, 'summary.md'), 'utf8')).toContain('4 passed, 0 failed, 0 skipped');
  });
});
