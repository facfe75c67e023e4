/**
 * `lab restore web@haproxy` against its floor, on the default lab, side by side in one run,
 * alternated (node dist/bench/restore-floor.js; BENCH_RUNS samples of each, default 10):
 * - lab: the command, from its start until it exits (web's systemd says running).
 * - the floor, by hand, what no restore can skip: web's nspawn killed, its root replaced by a
 *   writable snapshot of web@haproxy (new root first, two renames, the old root deleted), the same
 *   nspawn command line lab ran started again in the same network namespace and cgroup, until its
 *   systemd says running (`systemctl is-system-running --wait` through nsenter).
 * - LXC (with BENCH_LXC=1 and Debian's lxc installed): a container made from the same snapshot on
 *   the same btrfs pool, on a bridge of a network namespace of the bench, restored by `lxc-stop -k`,
 *   `lxc-snapshot -r` and `lxc-start`, until its systemd says running (through lxc-attach).
 * Targets: lab within 1.05x the floor, and no slower than LXC.
 * Results: reports/bench-restore-floor.{json,md}.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { inCgroups, labCgroups } from '../lib/host/cgroups.js';
import { spawnDetached } from '../lib/exec.js';
import { packageRoot } from '../lib/paths.js';
import { nspawnLeader, stopNspawn } from '../lib/runtime/nspawn-process.js';
import { refOf } from '../lib/state/process.js';
import { readState, type ProcessRef } from '../lib/state/state.js';
import { FAST, poll } from '../lib/wait.js';
import { benchRun, median, wallMs, writeBenchReport } from './report.js';

const lab = path.join(packageRoot, 'bin', 'lab.js');
const name = `bfl${process.pid.toString(36)}`.slice(0, 12);
const work = mkdtempSync('/var/tmp/lab-bench-floor-');
const config = path.join(work, 'lab.config.json');
writeFileSync(config, JSON.stringify({ name }));
const cli = (...args: string[]) => benchRun([process.execPath, lab, '--config', config, ...args]);
const runs = Number(process.env.BENCH_RUNS ?? 10);
const withLxc = process.env.BENCH_LXC === '1';
const BOOT_TIMEOUT_MS = 120_000;
const round = (ms: number) => Math.round(ms * 10) / 10;

const stateDir = path.join('/var/lib/lab', name);
const pool = path.join(stateDir, 'pool');
const webRoot = path.join(pool, 'machines', 'web');
const netns = `/run/netns/lab-${name}`;

function haproxySnapshot(): string {
  const dir = path.join(pool, 'snapshots', 'web');
  const found = readdirSync(dir).find((entry) => /^haproxy@[0-9a-f]+$/.test(entry));
  if (!found) throw new Error(`no snapshot haproxy@… in ${dir}`);
  return path.join(dir, found);
}

function webProcess(): ProcessRef {
  const process = readState(path.join(stateDir, 'state.json')).machines.web?.process;
  if (!process) throw new Error('web is not running');
  return process;
}

/** Until the machine whose init is found from `init` says running (or degraded); its systemd asked from the host. */
async function bootedFromHost(init: () => number | undefined, ask: (pid: number) => string[]): Promise<void> {
  const pid = await poll('the machine to have a systemd', () => {
    const found = init();
    return found && existsSync(`/proc/${found}/root/run/systemd/private`) ? found : undefined;
  }, { within: BOOT_TIMEOUT_MS, every: FAST });
  const state = await benchRun(ask(pid), { allowFailure: true, timeout: BOOT_TIMEOUT_MS });
  if (!/^(running|degraded)/.test(state.stdout)) throw new Error(`the machine booted into '${state.stdout.trim()}': ${state.stderr}`);
}

/** The floor: what lab's restore of web does, by hand, with lab's own nspawn command line. Returns the machine it started. */
async function floorRestore(snapshot: string, argv: string[], cgroups: string[]): Promise<{ ms: number; process: ProcessRef }> {
  const started = performance.now();
  await stopNspawn(webProcess(), { hard: true });
  await benchRun(['btrfs', 'subvolume', 'snapshot', snapshot, `${webRoot}.incoming`]);
  renameSync(webRoot, `${webRoot}.outgoing`);
  renameSync(`${webRoot}.incoming`, webRoot);
  const process = refOf(spawnDetached(inCgroups(cgroups, ['nsenter', `--net=${netns}`, ...argv]), path.join(work, 'floor-console.log')))!;
  await bootedFromHost(() => nspawnLeader(process), (pid) => ['nsenter', `--target=${pid}`, '--all', 'systemctl', 'is-system-running', '--wait']);
  await benchRun(['btrfs', 'subvolume', 'delete', `${webRoot}.outgoing`]);
  return { ms: performance.now() - started, process };
}

/** An LXC container on web's restored root, in a netns of the bench with a bridge of its own. */
class LxcMachine {
  readonly lxcPath = path.join(pool, 'bench-lxc');
  readonly netns = `lab-bench-lxc-${process.pid.toString(36)}`;
  private readonly dir = path.join(this.lxcPath, 'web');

  async make(snapshot: string, mac: string): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    await benchRun(['btrfs', 'subvolume', 'snapshot', snapshot, path.join(this.dir, 'rootfs')]);
    await benchRun(['ip', 'netns', 'add', this.netns]);
    await benchRun(['ip', '-n', this.netns, 'link', 'add', 'br0', 'type', 'bridge']);
    await benchRun(['ip', '-n', this.netns, 'link', 'set', 'br0', 'up']);
    writeFileSync(
      path.join(this.dir, 'config'),
      [
        'lxc.include = /usr/share/lxc/config/common.conf',
        'lxc.uts.name = web',
        `lxc.rootfs.path = btrfs:${path.join(this.dir, 'rootfs')}`,
        'lxc.net.0.type = veth',
        'lxc.net.0.link = br0',
        'lxc.net.0.flags = up',
        'lxc.net.0.name = host0',
        `lxc.net.0.hwaddr = ${mac}`,
        'lxc.apparmor.profile = unconfined',
        'lxc.mount.auto = cgroup:mixed proc:mixed sys:mixed',
        'lxc.autodev = 1',
        `lxc.console.logfile = ${path.join(work, 'lxc-console.log')}`,
        '',
      ].join('\n'),
    );
    await this.lxc('lxc-snapshot');
    await this.start();
  }

  private lxc(command: string, ...args: string[]) {
    return benchRun(['ip', 'netns', 'exec', this.netns, command, '-P', this.lxcPath, '-n', 'web', ...args], { timeout: BOOT_TIMEOUT_MS });
  }

  private async start(): Promise<void> {
    await this.lxc('lxc-start');
    await this.lxc('lxc-attach', '--', 'systemctl', 'is-system-running', '--wait').catch(async (error) => {
      if (!/running|degraded/.test(String((error as { result?: { stdout: string } }).result?.stdout))) throw error;
    });
  }

  async restore(): Promise<number> {
    return wallMs(async () => {
      await this.lxc('lxc-stop', '-k');
      await this.lxc('lxc-snapshot', '-r', 'snap0');
      await this.start();
    });
  }

  async remove(): Promise<void> {
    if (existsSync(this.dir)) {
      await this.lxc('lxc-stop', '-k').catch(() => undefined);
      await this.lxc('lxc-destroy', '-s').catch(() => undefined);
    }
    await benchRun(['ip', 'netns', 'delete', this.netns], { allowFailure: true });
  }
}

const labMs: number[] = [];
const floorMs: number[] = [];
const lxcMs: number[] = [];
const lxc = withLxc ? new LxcMachine() : undefined;
try {
  if (withLxc && !existsSync('/usr/bin/lxc-start')) throw new Error('BENCH_LXC=1 needs Debian\'s lxc (apt-get install --no-install-recommends lxc)');
  await cli('up');
  const snapshot = haproxySnapshot();
  // Lab's own command line and cgroups for web, as its last boot ran them.
  const argv = readFileSync(`/proc/${webProcess().pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  const cgroups = labCgroups(name, 'web');
  if (lxc) await lxc.make(snapshot, /MACAddress=(\S+)/.exec(readdirSync(path.join(webRoot, 'etc/systemd/network')).map((f) => readFileSync(path.join(webRoot, 'etc/systemd/network', f), 'utf8')).join('\n'))![1]!);
  for (let i = 0; i < runs; i++) {
    labMs.push(await wallMs(() => cli('restore', 'web@haproxy')));
    const floor = await floorRestore(snapshot, argv, cgroups);
    floorMs.push(floor.ms);
    // Lab's web back, recorded, for its next sample: the floor's machine ended first.
    await stopNspawn(floor.process, { hard: true });
    await cli('restore', 'web@haproxy');
    if (lxc) lxcMs.push(await lxc.restore());
  }
} finally {
  await lxc?.remove();
  await cli('destroy').catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
}

const results = {
  runs,
  lab: { medianMs: round(median(labMs)), samplesMs: labMs.map(round) },
  floor: { medianMs: round(median(floorMs)), samplesMs: floorMs.map(round) },
  labOverFloor: Math.round((median(labMs) / median(floorMs)) * 100) / 100,
  ...(lxc ? { lxc: { medianMs: round(median(lxcMs)), samplesMs: lxcMs.map(round) }, labOverLxc: Math.round((median(labMs) / median(lxcMs)) * 100) / 100 } : {}),
};
const markdown = [
  `# lab restore web@haproxy against its floor (medians of ${runs}, alternated)`,
  '',
  '| how | median (ms) | × floor | target |',
  '|---|---|---|---|',
  `| \`lab restore web@haproxy\` | ${results.lab.medianMs} | ${results.labOverFloor} | <= 1.05 |`,
  `| by hand: kill, snapshot swap, lab's nspawn command line, until running | ${results.floor.medianMs} | 1 | baseline |`,
  ...(results.lxc ? [`| LXC: lxc-stop -k, lxc-snapshot -r, lxc-start, until running | ${results.lxc.medianMs} | ${round(median(lxcMs) / median(floorMs))} | lab <= LXC (lab / LXC: ${results.labOverLxc}) |`] : []),
].join('\n');
writeBenchReport('restore-floor', results, markdown);
