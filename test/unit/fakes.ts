/**
 * Fake drivers for unit tests of the engine (test/unit/engine.test.ts): a whole `Lab` built from a
 * validated config and real stage files in a temporary directory, whose drivers record what they are
 * asked and touch nothing on the host. Machines are plain `sleep` processes (the engine checks a
 * machine's pid and start time in /proc), roots and snapshots plain directories in the temporary
 * state directory, build steps write a marker in the root instead of running.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { defaultLab } from '../../lib/config/default.js';
import type { LabConfigInput } from '../../lib/config/schema.js';
import { topologyOf } from '../../lib/config/topology.js';
import { validateConfig } from '../../lib/config/validate.js';
import { backendsOf } from '../../lib/engine/backends.js';
import type { Lab } from '../../lib/engine/lab-types.js';
import { planFor } from '../../lib/engine/planning.js';
import { InfraError, Interrupted } from '../../lib/errors.js';
import { CommandError, formatArgv, type RunOptions, type RunResult } from '../../lib/exec.js';
import type { Tool } from '../../lib/host/prereq.js';
import type { ImageDriver } from '../../lib/image/image.js';
import { beginInterruption, interruptionPhase } from '../../lib/interrupt.js';
import { labDirs, labNames } from '../../lib/layout.js';
import type { Network } from '../../lib/network/network.js';
import { LinkFaults } from '../../lib/network/faults.js';
import { LinkRelays } from '../../lib/network/relay.js';
import { PackageProxy } from '../../lib/network/package-proxy.js';
import { type MountHost, type MountInfo, NosuidBinds } from '../../lib/host/nosuid-binds.js';
import { type BuildStepOptions, BuildSteps } from '../../lib/runtime/build-steps.js';
import { type DisklessBoot, disklessOptions } from '../../lib/runtime/nspawn-process.js';
import type { MachineHandle, Readiness, Runtime } from '../../lib/runtime/runtime.js';
import { isAlive, processStartTime } from '../../lib/state/process.js';
import { type LabState, type ProcessRef, readState } from '../../lib/state/state.js';
import { type LoadedLab, loadLab, SYSTEM_STAGE } from '../../lib/stages/load.js';
import type { Storage } from '../../lib/storage/storage.js';
import { QemuVms } from '../../lib/vm/qemu.js';

/**
 * Everything the fakes were asked, in the order asked, as `<kind> <subject>`: `start gw`, `ready gw`,
 * `online gw` (its interfaces waited for), `stop gw hard`, `step gw@dns` (a stage's build step),
 * `diskless <machine> <directory> <nspawn options>` (a diskless machine's boot, before its `start`),
 * `snapshot machines/gw -> snapshots/gw/dns@<key>` (read-only), `copy <from> -> <to>` (writable),
 * `remove <path>` (paths relative to the pool).
 */
export class Events {
  readonly all: string[] = [];

  push(event: string): void {
    this.all.push(event);
  }

  /** Where the log is now, to look at what comes after. */
  mark(): number {
    return this.all.length;
  }

  since(mark = 0): string[] {
    return this.all.slice(mark);
  }

  /** The subjects of the events of one kind since `mark`: `of('start')` is the machines started, in order. */
  of(kind: string, mark = 0): string[] {
    return this.since(mark)
      .filter((e) => e.startsWith(`${kind} `))
      .map((e) => e.slice(kind.length + 1));
  }

  /** Position of an event (-1 when it never happened). */
  at(event: string): number {
    return this.all.indexOf(event);
  }
}

/**
 * What lib/exec.ts `run` does with a command asked for while lab is being interrupted: it refuses it.
 * Every fake that stands for commands (btrfs, nsenter, systemd-nspawn --pipe) does the same.
 */
function refuseWhileInterrupted(what: string): void {
  if (interruptionPhase() === 'ending') throw new Interrupted(`not started, lab is being interrupted: ${what}`);
}

const result = (argv: readonly string[], exitCode = 0, stdout = '', stderr = ''): RunResult => ({ argv, exitCode, stdout, stderr, durationMs: 0 });

/** The files under `dir`, relative to it. */
function filesIn(dir: string, under = ''): string[] {
  return readdirSync(path.join(dir, under), { withFileTypes: true }).flatMap((entry) => {
    const name = path.join(under, entry.name);
    return entry.isDirectory() ? filesIn(dir, name) : entry.isFile() ? [name] : [];
  });
}

/**
 * The pool as plain directories: a snapshot is a copy, made under `.partial` and renamed, as the real
 * drivers do. An export is the tree as JSON. With `identities`, it plays btrfs's part in lab cache:
 * every snapshot has an identity (a received one keeps its sender's), an export says the identity of
 * the parent it is incremental against, and an import refuses one whose parent the pool lacks.
 */
export class FakeStorage implements Storage {
  readonly kind = 'copy' as const;
  /** Identity of each snapshot, by path: what btrfs's UUIDs are (received ones carry their sender's). */
  private readonly ids = new Map<string, string>();
  identities = false;

  constructor(
    readonly root: string,
    private readonly events: Events,
  ) {}

  private relative(file: string): string {
    return path.relative(this.root, file);
  }

  async open(): Promise<void> {
    mkdirSync(this.root, { recursive: true });
  }

  async create(target: string): Promise<void> {
    refuseWhileInterrupted(`create ${target}`);
    mkdirSync(target, { recursive: true });
  }

  async snapshot(source: string, target: string, options: { readonly: boolean }): Promise<void> {
    mkdirSync(path.dirname(target), { recursive: true });
    const partial = `${target}.partial`;
    await this.remove(partial);
    refuseWhileInterrupted(`snapshot ${source} ${partial}`);
    cpSync(source, partial, { recursive: true, verbatimSymlinks: true });
    renameSync(partial, target);
    this.ids.set(target, randomUUID());
    this.events.push(`${options.readonly ? 'snapshot' : 'copy'} ${this.relative(source)} -> ${this.relative(target)}`);
  }

  async exportSnapshot(snapshot: string, file: string, parent?: string): Promise<void> {
    refuseWhileInterrupted(`export ${snapshot}`);
    mkdirSync(path.dirname(file), { recursive: true });
    const tree = Object.fromEntries(filesIn(snapshot).map((f) => [f, readFileSync(path.join(snapshot, f), 'base64')]));
    const parentIdentity = this.identities && parent ? await this.identity(parent) : undefined;
    writeFileSync(`${file}.partial`, JSON.stringify({ identity: await this.identity(snapshot), parentIdentity, tree }));
    renameSync(`${file}.partial`, file);
    this.events.push(`export ${this.relative(snapshot)}${parent ? ` on ${this.relative(parent)}` : ''}`);
  }

  async identity(snapshot: string): Promise<string | undefined> {
    if (!this.identities) return undefined;
    if (!this.ids.has(snapshot)) this.ids.set(snapshot, randomUUID()); // made before the fake knew it (the base image)
    return this.ids.get(snapshot);
  }

  async heldIdentities(): Promise<Set<string>> {
    return new Set([...this.ids].filter(([snapshot]) => existsSync(snapshot)).map(([, id]) => id));
  }

  async importSnapshot(file: string, target: string): Promise<void> {
    refuseWhileInterrupted(`import ${file}`);
    const exported = JSON.parse(readFileSync(file, 'utf8')) as { identity?: string; parentIdentity?: string; tree: Record<string, string> };
    if (exported.parentIdentity && !(await this.heldIdentities()).has(exported.parentIdentity)) throw new Error(`cannot find the parent ${exported.parentIdentity} of ${file}`);
    const partial = `${target}.partial`;
    for (const [name, content] of Object.entries(exported.tree)) {
      mkdirSync(path.dirname(path.join(partial, name)), { recursive: true });
      writeFileSync(path.join(partial, name), Buffer.from(content, 'base64'));
    }
    mkdirSync(partial, { recursive: true });
    renameSync(partial, target);
    if (exported.identity) this.ids.set(target, exported.identity);
    this.events.push(`import ${path.basename(file)} -> ${this.relative(target)}`);
  }

  async seal(source: string, target: string): Promise<void> {
    refuseWhileInterrupted(`seal ${source}`);
    renameSync(source, target);
  }

  async remove(target: string): Promise<void> {
    if (!existsSync(target)) return;
    refuseWhileInterrupted(`remove ${target}`);
    rmSync(target, { recursive: true, force: true });
    for (const snapshot of this.ids.keys()) if (snapshot === target || snapshot.startsWith(`${target}/`)) this.ids.delete(snapshot);
    this.events.push(`remove ${this.relative(target)}`);
  }

  space(): { sizeBytes: number; freeBytes: number } {
    return { sizeBytes: 2 ** 40, freeBytes: 2 ** 40 };
  }

  async exclusiveBytes(paths: readonly string[]): Promise<(number | undefined)[]> {
    return paths.map(() => undefined);
  }

  tools(): Tool[] {
    return [];
  }

  async leftovers(): Promise<string[]> {
    return existsSync(this.root) ? [`pool ${this.root}`] : [];
  }

  async destroy(): Promise<void> {
    rmSync(this.root, { recursive: true, force: true });
  }

  describe(): string {
    return 'fake storage: directories, snapshots are copies';
  }
}

/**
 * Machines as real processes (`sleep`) that this runtime starts and kills itself: the engine tells a
 * running machine by its pid and start time in /proc. Its systemd answers `running` at once, and its
 * interfaces are configured as soon as asked, and every unit is active.
 */
export class FakeRuntime implements Runtime {
  private readonly children = new Map<number, ChildProcess>();

  constructor(private readonly events: Events) {}

  async start(machine: string, root: string, diskless?: DisklessBoot): Promise<ProcessRef> {
    if (!existsSync(root)) throw new InfraError(`fake runtime: ${machine} has no root at ${root}`);
    if (diskless) this.events.push(`diskless ${machine} ${root} ${disklessOptions(diskless).join(' ')}`);
    const child = spawn('sleep', ['600'], { stdio: 'ignore' });
    child.on('error', () => undefined); // reported below: no pid
    const startTime = child.pid === undefined ? undefined : processStartTime(child.pid);
    if (child.pid === undefined || startTime === undefined) throw new Error('fake runtime: could not start sleep');
    this.children.set(child.pid, child);
    this.events.push(`start ${machine}`);
    return { pid: child.pid, startTime };
  }

  async waitReady(handle: MachineHandle, _timeoutMs: number): Promise<Readiness> {
    refuseWhileInterrupted(`systemctl is-system-running --wait in ${handle.name}`);
    if (!isAlive(handle.process)) throw new InfraError(`fake runtime: ${handle.name} is not running`);
    this.events.push(`ready ${handle.name}`);
    return { state: 'running', failedUnits: [], bootMs: 1 };
  }

  async exec(handle: MachineHandle, argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    refuseWhileInterrupted(formatArgv(argv));
    const answer = this.answer(handle, argv);
    if (answer.exitCode !== 0 && !options.allowFailure) throw new CommandError(answer, `exit code ${answer.exitCode}`);
    return answer;
  }

  private answer(handle: MachineHandle, argv: readonly string[]): RunResult {
    if (!isAlive(handle.process)) return result(argv, 1, '', `fake runtime: ${handle.name} is not running`);
    this.events.push(`exec ${handle.name} ${argv.join(' ')}`);
    if (argv[0] === 'systemctl' && argv[1] === 'is-system-running') return result(argv, 0, 'running\n');
    if (argv[0] === 'systemctl' && argv[1] === 'is-active') return result(argv, 0, 'active\n');
    return result(argv);
  }

  async shell(handle: MachineHandle): Promise<number> {
    throw new Error(`fake runtime: no shell in ${handle.name}`);
  }

  async stopUnrecorded(_state: LabState): Promise<string[]> {
    return [];
  }

  async leaderPid(handle: MachineHandle): Promise<number | undefined> {
    return isAlive(handle.process) ? handle.process.pid : undefined;
  }

  async unconfiguredInterfaces(handle: MachineHandle): Promise<string[] | undefined> {
    if (!isAlive(handle.process)) return undefined;
    this.events.push(`online ${handle.name}`);
    return [];
  }

  async stop(handle: MachineHandle, options: { hard: boolean }): Promise<void> {
    this.events.push(`stop ${handle.name} ${options.hard ? 'hard' : 'clean'}`);
    await this.kill(handle.process.pid);
  }

  /** Kills a machine's process and waits until it is reaped (gone from /proc). */
  private async kill(pid: number): Promise<void> {
    const child = this.children.get(pid);
    if (!child) return;
    this.children.delete(pid);
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }

  /** Every machine process still running, killed (after each test). */
  async killAll(): Promise<void> {
    await Promise.all([...this.children.keys()].map((pid) => this.kill(pid)));
  }

  tools(): Tool[] {
    return [];
  }

  async leftovers(): Promise<string[]> {
    return [...this.children.keys()].map((pid) => `fake machine ${pid}`);
  }

  async destroy(): Promise<void> {
    await this.killAll();
  }

  describe(): string {
    return 'fake runtime: sleep processes';
  }
}

/** Where a build step leaves its mark in the root: one file per stage, `started` and then, once it ends well, its script. */
export const STEP_MARKS = 'var/lib/lab-steps';

/**
 * Build steps (what runs a shell stage's script in its stopped root) that run nothing: each writes
 * its mark in the root. A step named in `failing` exits 1 half way; one given to `interruptAt` is
 * ended the way lab's interruption ends a running command (lab is told first, then the command
 * fails as interrupted), once the condition given with it holds.
 */
export class FakeBuildSteps extends BuildSteps {
  readonly failing = new Set<string>();
  /** What a step (`<machine>@<stage>`) does to its root besides its mark, when it ends well. */
  readonly effects = new Map<string, (root: string) => void>();
  /** The options each step (`<machine>@<stage>`) was last run with: its deadline, its log. */
  readonly options = new Map<string, BuildStepOptions>();
  private readonly interruptions = new Map<string, Promise<unknown>>();
  /** While set, every step waits for it (after its event): how many run at once shows. */
  hold?: Promise<void>;
  running = 0;
  mostAtOnce = 0;

  constructor(
    machinesDir: string,
    labName: string,
    private readonly events: Events,
  ) {
    super([machinesDir], labName);
  }

  /** `step` (`<machine>@<stage>`) is interrupted, the next time it runs, once `when` resolves. */
  interruptAt(step: string, when: Promise<unknown> = Promise.resolve()): void {
    this.interruptions.set(step, when);
  }

  override async run(root: string, _name: string, argv: readonly string[], options: BuildStepOptions = {}): Promise<RunResult> {
    refuseWhileInterrupted(formatArgv(argv));
    const env = new Map(argv.filter((a) => /^LAB_[A-Z]+=/.test(a)).map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
    const stage = env.get('LAB_STAGE');
    if (!stage) throw new Error(`fake build steps: only shell stages are faked, not ${formatArgv(argv)}`);
    const step = `${env.get('LAB_MACHINE')}@${stage}`;
    this.events.push(`step ${step}`);
    this.options.set(step, options);
    this.running++;
    this.mostAtOnce = Math.max(this.mostAtOnce, this.running);
    try {
      await this.hold;
    } finally {
      this.running--;
    }
    const mark = path.join(root, STEP_MARKS, stage);
    mkdirSync(path.dirname(mark), { recursive: true });
    writeFileSync(mark, 'started\n');
    const interruption = this.interruptions.get(step);
    if (interruption) {
      this.interruptions.delete(step); // once: the next up runs it
      await interruption;
      beginInterruption(); // what lab's signal handler does first, then it ends the running commands
      throw new CommandError(result(argv, -1), 'interrupted');
    }
    if (this.failing.has(step)) throw new CommandError(result(argv, 1, '', `${step} fails on purpose\n`), 'exit code 1');
    this.effects.get(step)?.(root);
    const scriptDir = options.binds?.find((b) => b.target === '/run/lab-stage')?.source;
    appendFileSync(mark, scriptDir ? readFileSync(path.join(scriptDir, 'stage.sh'), 'utf8') : 'done\n');
    return result(argv);
  }

  override strays(): { process: ProcessRef; wrapper: boolean }[] {
    return [];
  }

  override tools(): Tool[] {
    return [];
  }

  override async leftovers(): Promise<string[]> {
    return [];
  }

  override async destroy(): Promise<void> {}

  override describe(): string {
    return 'fake build steps: a mark in the root';
  }
}

export class FakeNetwork implements Network {
  readonly mode = 'sandbox' as const;
  readonly netnsPrefix: readonly string[] = [];

  constructor(private readonly events: Events) {}

  async setup(_state: LabState): Promise<void> {
    this.events.push('network setup');
  }

  async stopServices(_state: LabState): Promise<void> {}

  tools(): Tool[] {
    return [];
  }

  async leftovers(): Promise<string[]> {
    return [];
  }

  async destroy(): Promise<void> {}

  describe(): string {
    return 'fake network';
  }
}

/**
 * The host's mount table as the nosuid binds driver sees it: `mount --rbind S S`, `mount -o
 * remount,bind,... S` and `umount --lazy S` act on it (each an event `host <argv>`), and the mount
 * a path shows is found as the kernel would, from / down through what is stacked on each prefix.
 * It starts with a root file system, and `mountAt` stands for mounts of the host's own.
 */
export class FakeMountTable implements MountHost {
  private readonly table: MountInfo[] = [{ id: 1, parent: 0, mountPoint: '/', options: ['rw', 'relatime'] }];
  private nextId = 2;
  boot = 'boot-1';

  constructor(private readonly events: Events) {}

  mounts(): MountInfo[] {
    return this.table.map((m) => ({ ...m, options: [...m.options] }));
  }

  /** A mount of the host's own (not lab's) at `dir`, on what it shows now. */
  mountAt(dir: string, options = ['rw', 'relatime']): number {
    const id = this.nextId++;
    this.table.push({ id, parent: this.visible(dir), mountPoint: dir, options });
    return id;
  }

  visible(dir: string): number {
    let current = 1;
    const prefixes = dir.split('/').filter(Boolean).map((_, i, parts) => `/${parts.slice(0, i + 1).join('/')}`);
    for (const prefix of ['/', ...prefixes]) {
      for (let above = this.onTop(current, prefix); above; above = this.onTop(current, prefix)) current = above.id;
    }
    return current;
  }

  private onTop(parent: number, mountPoint: string): MountInfo | undefined {
    return this.table.find((m) => m.parent === parent && m.mountPoint === mountPoint);
  }

  async run(argv: string[]): Promise<void> {
    this.events.push(`host ${argv.join(' ')}`);
    const target = argv.at(-1)!;
    const shown = this.table.find((m) => m.id === this.visible(target))!;
    if (argv[1] === '--rbind') this.table.push({ id: this.nextId++, parent: shown.id, mountPoint: target, options: [...shown.options] });
    else if (argv[1] === '-o') shown.options = argv[2]!.split(',').filter((o) => o !== 'remount' && o !== 'bind');
    else if (argv[0] === 'umount') this.unmount(shown.id);
    else throw new Error(`the fake mount table does not know ${argv.join(' ')}`);
  }

  private unmount(id: number): void {
    for (const child of this.table.filter((m) => m.parent === id)) this.unmount(child.id);
    this.table.splice(this.table.findIndex((m) => m.id === id), 1);
  }

  bootId(): string {
    return this.boot;
  }

  disarm(dir: string, leave: ReadonlySet<string>, _since: number): void {
    this.events.push(`disarm ${dir}${leave.size ? ` leaving ${[...leave].join(' ')}` : ''}`);
  }
}

/** A base image of one file. A tarball source: lab keeps no tarball of it in the cache (no tar runs). */
export class FakeImage implements ImageDriver {
  readonly source = 'tarball' as const;
  readonly distribution = 'debian';
  readonly suite = 'bookworm';
  readonly key = 'ba5e0000';

  constructor(private readonly events: Events) {}

  describe(): string {
    return 'fake image';
  }

  tools(): Tool[] {
    return [];
  }

  async check(): Promise<void> {}

  async build(target: string, _cacheDir: string, log: (line: string) => void): Promise<void> {
    this.events.push('image build');
    mkdirSync(path.join(target, 'etc'), { recursive: true });
    writeFileSync(path.join(target, 'etc', 'os-release'), 'ID=debian\n');
    log('a fake base image');
  }

  packageManager(): undefined {
    return undefined;
  }
}

/**
 * The built-in system stage as it is (hostname, machine-id, networkd files written into the root),
 * but for its `enable`, which runs the host's `systemctl --root` directly (not through the build
 * steps): recorded instead, as `enable <machine> <units>`. Its step is recorded as the others'.
 */
function withRecordedSystemStage(loaded: LoadedLab, events: Events): LoadedLab {
  for (const machine of loaded.machines) {
    const stage = machine.stages.find((s) => s.name === SYSTEM_STAGE);
    if (!stage) continue;
    const real = stage.definition;
    stage.definition = {
      ...real,
      async run(ctx) {
        events.push(`step ${machine.name}@${SYSTEM_STAGE}`);
        await real.run!({
          ...ctx,
          enable: async (...units) => {
            refuseWhileInterrupted(`systemctl enable ${units.join(' ')}`);
            events.push(`enable ${machine.name} ${units.join(' ')}`);
          },
        });
      },
    };
  }
  return loaded;
}

/** The default lab's machines and their own stages (each machine's `system` comes first). */
export const STAGES: Record<string, string[]> = Object.fromEntries(defaultLab.machines.map((m) => [m.name, m.stages ?? []]));

export interface FakeLab {
  dir: string;
  lab: Lab;
  events: Events;
  runtime: FakeRuntime;
  storage: FakeStorage;
  buildSteps: FakeBuildSteps;
  mountTable: FakeMountTable;
  /** Writes a stage's file and loads the lab's stages again, as the next lab command would. */
  writeStage(machine: string, stage: string, script: string): Promise<void>;
  /** The state as the lab has written it. */
  state(): LabState;
  /** A stage's key in the current plan. */
  keyOf(machine: string, stage: string): string;
  /** The stage snapshots taken since `mark` (not failed states), as `<machine>@<stage>`. */
  taken(mark?: number): string[];
  /** The entries of a machine's snapshots directory, without the metadata files. */
  snapshotsOf(machine: string): string[];
  /** What build steps left in a machine's root (or a snapshot of it): stage, then its mark. */
  marks(root: string): Record<string, string>;
  /** Kills the machines, removes the temporary directory. */
  cleanup(): Promise<void>;
}

/**
 * The default lab (gw, web-silicon on DHCP from gw, web), or `overrides` of it, as a `Lab` whose
 * state, cache, stages and fixtures are in a new temporary directory, with fake drivers.
 */
export async function fakeLab(overrides: Partial<LabConfigInput> = {}): Promise<FakeLab> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lab-engine-'));
  const stagesDir = path.join(dir, 'stages');
  const fixturesDir = path.join(dir, 'fixtures');
  mkdirSync(fixturesDir, { recursive: true });
  const config = validateConfig({ ...defaultLab, ...overrides, name: 'unit', stateDir: path.join(dir, 'state'), cacheDir: path.join(dir, 'cache'), stagesDir, fixturesDir });
  const writeStageFile = (machine: string, stage: string, script: string) => {
    mkdirSync(path.join(stagesDir, machine), { recursive: true });
    writeFileSync(path.join(stagesDir, machine, `${stage}.sh`), script);
  };
  for (const machine of config.machines) for (const stage of machine.stages) writeStageFile(machine.name, stage, `#!/bin/sh\necho ${machine.name} ${stage}\n`);

  const events = new Events();
  const names = labNames(config);
  const dirs = labDirs(config);
  const topology = topologyOf(config);
  const runtime = new FakeRuntime(events);
  const storage = new FakeStorage(dirs.pool, events);
  const buildSteps = new FakeBuildSteps(dirs.machinesDir, config.name, events);
  const mountTable = new FakeMountTable(events);
  const load = async () => withRecordedSystemStage(await loadLab(config, topology), events);
  const lab: Lab = {
    config,
    names,
    dirs,
    loaded: await load(),
    image: new FakeImage(events),
    storage,
    network: new FakeNetwork(events),
    profile: { runtime: 'nspawn', why: 'unit tests: fake drivers', systemdPid1: false, machined: false, networkd: false },
    topology,
    runtime,
    vms: new QemuVms({
      labName: config.name,
      machines: config.machines,
      topology,
      netnsPrefix: [],
      socketsDir: path.join(dirs.state, 'vm'),
      consoleLog: dirs.consoleLog,
      nspawnName: names.nspawnName,
    }),
    backendOf: backendsOf(config),
    buildSteps,
    // No bridge to clear: the fakes' network is no namespace of its own.
    faults: new LinkFaults({ dir: path.join(dirs.state, 'faults'), netnsPrefix: [], nftTable: names.nftTable, bridges: [] }, new LinkRelays({ labName: config.name, netnsPrefix: [], dir: path.join(dirs.state, 'relays') })),
    nosuidBinds: new NosuidBinds(dirs.state, { registry: path.join(dir, 'nosuid-binds.json'), host: mountTable }),
    packageCache: path.join(config.cacheDir, 'packages', 'debian-bookworm'),
    // No proxy process in unit tests: no machine reaches it.
    packageProxy: new PackageProxy({ addresses: [], mirrors: [], cacheDir: path.join(config.cacheDir, 'packages', 'proxy'), stateDir: dirs.state, logFile: path.join(dirs.logs, 'package-proxy.log'), netnsPrefix: [], off: 'unit tests' }),
  };

  return {
    dir,
    lab,
    events,
    runtime,
    storage,
    buildSteps,
    mountTable,
    async writeStage(machine, stage, script) {
      writeStageFile(machine, stage, script);
      lab.loaded = await load();
    },
    state: () => readState(dirs.stateFile),
    keyOf(machine, stage) {
      const planned = planFor(lab).machines.find((m) => m.name === machine)?.stages.find((s) => s.name === stage);
      if (!planned) throw new Error(`no stage ${machine}@${stage} in the plan`);
      return planned.key;
    },
    taken: (mark = 0) =>
      events
        .of('snapshot', mark)
        .map((e) => /-> snapshots\/([^/]+)\/([a-z0-9-]+)@/.exec(e))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => `${m[1]}@${m[2]}`),
    snapshotsOf: (machine) => (existsSync(dirs.snapshotsOf(machine)) ? readdirSync(dirs.snapshotsOf(machine)).filter((e) => !e.endsWith('.json')).sort() : []),
    marks(root) {
      const marks = path.join(root, STEP_MARKS);
      return existsSync(marks) ? Object.fromEntries(readdirSync(marks).sort().map((stage) => [stage, readFileSync(path.join(marks, stage), 'utf8')])) : {};
    },
    async cleanup() {
      await runtime.killAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
