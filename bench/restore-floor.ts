/**
 * `lab restore web@haproxy` against its floor, on the default lab, side by side in one run,
 * alternated (node dist/bench/restore-floor.js; BENCH_RUNS samples of each, default 10):
 * - lab: the command, from its start until it exits (web's systemd says running).
 * - the floor, by hand, what no restore can skip: web's nspawn killed, its root replaced by a
 *   writable snapshot of web@haproxy (new root first, two renames, the old root deleted), the same
 *   nspawn command line lab ran started again in the same network namespace and cgroup, until its
 *   systemd says running (`systemctl is-system-running --wait` through nsenter).
 * - LXC (with BENCH_LXC=1 and Debian's lxc installed): a container made from the same snapshot on
 *   the same btrfs pool, on web's bridge in the lab's network namespace (lab's web stopped for it),
 *   restored by `lxc-stop -k`, `lxc-snapshot -r` and `lxc-start`, until its systemd says running
 *   (through lxc-attach).
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

/**
 * An LXC container on web@haproxy's root, in the lab's own network namespace on web's bridge with
 * web's MAC (lab's web stopped meanwhile), so that it boots as lab's web does. The device rules of
 * LXC's common config are cleared: this host's devices cgroup does not grant them.
 */
class LxcMachine {
  readonly lxcPath = path.join(pool, 'bench-lxc');
  private readonly dir = path.join(this.lxcPath, 'web');

  async make(snapshot: string, bridge: string, mac: string): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    await benchRun(['btrfs', 'subvolume', 'snapshot', snapshot, path.join(this.dir, 'rootfs')]);
    writeFileSync(
      path.join(this.dir, 'config'),
      [
        'lxc.include = /usr/share/lxc/config/common.conf',
        'lxc.cgroup.devices.deny =',
        'lxc.cgroup.devices.allow =',
        'lxc.uts.name = web',
        `lxc.rootfs.path = btrfs:${path.join(this.dir, 'rootfs')}`,
        'lxc.net.0.type = veth',
        `lxc.net.0.link = ${bridge}`,
        'lxc.net.0.flags = up',
        'lxc.net.0.name = host0',
        `lxc.net.0.hwaddr = ${mac}`,
        'lxc.apparmor.profile = unconfined',
        'lxc.mount.auto = cgroup:mixed proc:mixed sys:mixed',
        'lxc.autodev = 1',
        '',
      ].join('\n'),
    );
    await this.lxc('lxc-snapshot'); // snap0, of the stopped container: a btrfs snapshot
  }

  private lxc(command: string, ...args: string[]) {
    return benchRun(['ip', 'netns', 'exec', `lab-${name}`, command, '-P', this.lxcPath, '-n', 'web', ...args], { timeout: BOOT_TIMEOUT_MS });
  }

  /** lxc-stop -k, lxc-snapshot -r, lxc-start, until running; then stopped again, untimed. */
  async restore(): Promise<number> {
    const ms = await wallMs(async () => {
      await this.lxc('lxc-stop', '-k').catch(() => undefined); // stopped already after make()
      await this.lxc('lxc-snapshot', '-r', 'snap0');
      await this.lxc('lxc-start');
      const init = Number((await this.lxc('lxc-info', '-p', '-H')).stdout.trim());
      await bootedFromHost(() => init, () => ['ip', 'netns', 'exec', `lab-${name}`, 'lxc-attach', '-P', this.lxcPath, '-n', 'web', '--', 'systemctl', 'is-system-running', '--wait']);
    });
    await this.lxc('lxc-stop', '-k');
    return ms;
  }

  async remove(): Promise<void> {
    if (!existsSync(this.dir)) return;
    await this.lxc('lxc-stop', '-k').catch(() => undefined);
    await this.lxc('lxc-destroy', '-s').catch(() => undefined);
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
  if (lxc) {
    const networkd = path.join(webRoot, 'etc/systemd/network');
    const mac = /MACAddress=(\S+)/.exec(readdirSync(networkd).map((f) => readFileSync(path.join(networkd, f), 'utf8')).join('\n'))![1]!;
    await lxc.make(snapshot, argv.find((a) => a.startsWith('--network-bridge='))!.split('=')[1]!, mac);
  }
  for (let i = 0; i < runs; i++) {
    labMs.push(await wallMs(() => cli('restore', 'web@haproxy')));
    const floor = await floorRestore(snapshot, argv, cgroups);
    floorMs.push(floor.ms);
    // Lab's web back, recorded, for its next sample: the floor's machine ended first.
    await stopNspawn(floor.process, { hard: true });
    await cli('restore', 'web@haproxy');
    if (lxc) {
      // Lab's web down for LXC's sample (they share the address), then back, untimed.
      await stopNspawn(webProcess(), { hard: true });
      lxcMs.push(await lxc.restore());
      await cli('restore', 'web@haproxy');
    }
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
