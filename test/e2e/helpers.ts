import { execa } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';

export const repoRoot = path.resolve(import.meta.dirname, '../..');
export const STATE_ROOT = '/var/lib/lab';

export interface LabRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI; never throws, the test asserts on the exit code and output. */
export async function lab(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<LabRun> {
  const result = await execa(process.execPath, [path.join(repoRoot, 'bin', 'lab.js'), ...args], {
    cwd: options.cwd ?? repoRoot,
    env: options.env,
    reject: false,
    stripFinalNewline: false,
    timeout: 15 * 60_000,
  });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

/** Like `lab`, but a non-zero exit fails the test with the whole output. */
export async function labOk(args: string[], options: { cwd?: string } = {}): Promise<string> {
  const result = await lab(args, options);
  if (result.exitCode !== 0) throw new Error(`lab ${args.join(' ')} exited ${result.exitCode}\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** A lab name no other run uses (names are at most 12 characters). */
export function uniqueName(prefix: string): string {
  return `${prefix}${process.pid.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`.slice(0, 12);
}

/** What of lab `name` is on the host, found independently of the lab's own code. */
export function hostTraces(name: string, stateRoot = STATE_ROOT): string[] {
  const traces: string[] = [];
  const netns = existsSync('/run/netns') ? readdirSync('/run/netns') : [];
  for (const ns of netns) if (ns === `lab-${name}` || ns === `lab-${name}-wan`) traces.push(`netns ${ns}`);
  const stateDir = path.join(stateRoot, name);
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const mountPoint = line.split(' ')[1] ?? '';
    if (mountPoint.startsWith(stateDir)) traces.push(`mount ${mountPoint}`);
  }
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(`${stateDir}/`)) traces.push(`process ${entry}: ${cmdline.replaceAll('\0', ' ')}`);
    } catch {
      // exited meanwhile
    }
  }
  const loops = readdirSync('/sys/block').filter((d) => d.startsWith('loop'));
  for (const loop of loops) {
    const backing = `/sys/block/${loop}/loop/backing_file`;
    if (existsSync(backing) && readFileSync(backing, 'utf8').startsWith(stateDir)) traces.push(`loop device ${loop}`);
  }
  for (const hierarchy of ['/sys/fs/cgroup', '/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified']) {
    if (existsSync(path.join(hierarchy, `lab.${name}`))) traces.push(`cgroup ${path.join(hierarchy, `lab.${name}`)}`);
  }
  // A container's init outliving its nspawn shows no lab path in its argv, but stays in the lab's cgroup.
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const zombie = stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z'); // ended, waiting for the host's init to reap it
      if (!zombie && readFileSync(`/proc/${entry}/cgroup`, 'utf8').includes(`/lab.${name}/`)) traces.push(`process ${entry} in a cgroup of the lab`);
    } catch {
      // exited meanwhile
    }
  }
  // The writable bind sources lab keeps nosuid,nodev on the host, for this lab's machines (lab's registry, its format read here).
  const registry = '/run/lab/nosuid-binds.json';
  const entries = existsSync(registry) ? (JSON.parse(readFileSync(registry, 'utf8')) as { source: string; holders: { lab: string }[] }[]) : [];
  for (const entry of entries) if (entry.holders.some((h) => h.lab === stateDir)) traces.push(`nosuid bind of ${entry.source} held for the lab`);
  if (existsSync(stateDir)) traces.push(`state directory ${stateDir}`);
  return traces;
}

/**
 * A one-machine lab with stages of the test's own, in a directory of its own: `ok` is stages/solo/ok.mjs,
 * `site.sh` a shell stage. `machineConfig` lines go under the machine (`binds: [...]`).
 */
export function soloLab(stages: Record<string, string>, extraConfig: string[] = [], machineConfig: string[] = []): { dir: string; config: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'lab-e2e-'));
  mkdirSync(path.join(dir, 'stages', 'solo'), { recursive: true });
  const file = (stage: string) => (path.extname(stage) ? stage : `${stage}.mjs`);
  for (const [stage, source] of Object.entries(stages)) writeFileSync(path.join(dir, 'stages', 'solo', file(stage)), source);
  const names = Object.keys(stages).map((stage) => path.basename(stage, path.extname(stage)));
  const config = path.join(dir, 'lab.config.yaml');
  writeFileSync(
    config,
    ['stagesDir: stages', 'zone: { dnsMachine: null }', ...extraConfig, 'machines:', '  - name: solo', '    address: 10.224.0.9', `    stages: [${names.join(', ')}]`, ...machineConfig.map((line) => `    ${line}`), ''].join('\n'),
  );
  return { dir, config };
}

/** Runs a command as `nobody` on the host (another user of it, whom lab does not trust); never throws. */
export function asNobody(argv: string[]): Promise<{ exitCode?: number; stdout: string; stderr: string }> {
  return execa('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...argv], { reject: false });
}

/** The mounts whose mount point is `dir`, from the host's mount table (bottom first). */
export function mountsAt(dir: string): { id: number; options: string[] }[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' '))
    .filter((fields) => fields[4]?.replace(/\\040/g, ' ') === dir)
    .map((fields) => ({ id: Number(fields[0]), options: fields[5]!.split(',') }));
}


export const DEFAULT_SCENARIOS = ['connectivity', 'dns', 'exclusive/restore', 'nat', 'proxy', 'services', 'tap'];

export interface TestReport {
  passed: number;
  failed: number;
  skipped: number;
  scenarios: { name: string; outcome: string }[];
}

/** The results of the latest `lab test` run written to `reports`. */
export function latestReport(reports: string): TestReport {
  return JSON.parse(readFileSync(path.join(reports, 'latest', 'results.json'), 'utf8')) as TestReport;
}

/** Every default scenario ran, and passed: none failed, none was skipped. */
export function expectDefaultScenariosPassed(report: TestReport): void {
  expect(report.failed).toBe(0);
  expect(report.skipped).toBe(0);
  expect(report.scenarios.map((s) => `${s.name}:${s.outcome}`).sort()).toEqual(DEFAULT_SCENARIOS.map((s) => `${s}:passed`));
  expect(report.passed).toBeGreaterThanOrEqual(30);
}

/** Runs `lab test` (the default scenarios) with `args` before it, and expects them all to pass. */
export async function expectLabTestPasses(args: string[], reports: string): Promise<TestReport> {
  const run = await lab([...args, 'test', '--reports', reports]);
  expect(run.exitCode, `${run.stdout}\n${run.stderr}`).toBe(0);
  const report = latestReport(reports);
  expectDefaultScenariosPassed(report);
  return report;
}
