/**
 * Benchmark of scale (npm run bench), side by side in one run, the base image cached:
 * - **Containers**: `lab up` from a fresh state (a lab name of its own) of N machines with the
 *   built-in stage only (static addresses, no DNS machine), N = 25, 100, 200, against the floor: N
 *   bare nspawn boots of the base image by hand (a btrfs snapshot of the base each, systemd-nspawn
 *   --boot on a bridge of a netns of the bench, each in a cgroup of its own, as many at once as
 *   lab boots), until each systemd says running. Runs alternate. Target: within 1.1x at 200.
 * - **A room**: gw (DNS and DHCP) and rhfs (examples/sadm's nfsroot stage) with N-2 diskless
 *   contestants on rhfs's root, fresh, N = 25, 100, 200, 500: wall time, ms per machine, running
 *   and degraded, and each contestant's host memory (the drop of MemAvailable over the room's
 *   boot, per contestant; and its PSS). Target: 500 within 150 s, none degraded, at most 15 MB each.
 * BENCH_RUNS (default 3) runs of each; BENCH_SIZES (say "25,100") to take only some sizes.
 * Results: reports/bench-scale.{json,md}.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { inCgroups, labCgroupRoots, labCgroups, removeCgroupTree } from '../lib/host/cgroups.js';
import { bootConcurrency } from '../lib/host/limits.js';
import { spawnDetached } from '../lib/exec.js';
import { packageRoot } from '../lib/paths.js';
import { nspawnArgv, nspawnLeader, stopNspawn } from '../lib/runtime/nspawn-process.js';
import { refOf } from '../lib/state/process.js';
import type { ProcessRef } from '../lib/state/state.js';
import { Semaphore, FAST, poll } from '../lib/wait.js';
import { benchRun, median, writeBenchReport } from './report.js';

const lab = path.join(packageRoot, 'bin', 'lab.js');
const work = mkdtempSync('/var/tmp/lab-bench-scale-');
const runs = Number(process.env.BENCH_RUNS ?? 3);
const sizes = process.env.BENCH_SIZES?.split(',').map(Number);
const wanted = (n: number) => !sizes || sizes.includes(n);
const tag = process.pid.toString(36).slice(-4);
const round = (value: number, digits = 2) => Number(value.toFixed(digits));
const BOOT_TIMEOUT_MS = 600_000;

/** Every lab a run made, by config file: destroyed at the end whatever happened. */
const made = new Set<string>();
const cli = (config: string, ...args: string[]) => {
  made.add(config);
  return benchRun([process.execPath, lab, '--config', config, ...args]);
};

/** A /22 of static addresses: 10.232.0.1 on. */
const staticAddress = (i: number) => `10.232.${Math.floor(i / 250)}.${(i % 250) + 1}`;

function containersConfig(machines: number, run: number): string {
  const file = path.join(work, `containers-${machines}-${run}.yaml`);
  const lines = [`name: bsc${machines}r${run}${tag}`, 'zone: { dnsMachine: null }', 'networks: [{ name: lan, subnet: 10.232.0.0/22 }]', 'machines:'];
  for (let i = 0; i < machines; i++) lines.push(`  - { name: m${String(i).padStart(3, '0')}, interfaces: [{ network: lan, address: ${staticAddress(i)} }] }`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

function roomConfig(machines: number, run: number): string {
  const file = path.join(work, `room-${machines}-${run}.yaml`);
  const sadm = path.join(packageRoot, 'examples', 'sadm');
  writeFileSync(
    file,
    [
      `name: brm${machines}r${run}${tag}`,
      'zone: { domain: prolo, dnsMachine: gw }',
      `stagesDir: ${path.join(sadm, 'stages')}`,
      'networks: [{ name: users, subnet: 10.233.0.0/22 }]',
      'machines:',
      '  - { name: gw, interfaces: [{ network: users, address: 10.233.3.254 }], stages: [dns] }',
      '  - { name: rhfs, interfaces: [{ network: users, address: 10.233.3.253 }], stages: [nfsroot] }',
      `rooms: [{ machines: ${machines - 2}, perRow: 50, network: users, root: { machine: rhfs, path: /export/nfsroot_ro } }]`,
      '',
    ].join('\n'),
  );
  return file;
}

interface UpJson {
  machines: { name: string; booted: boolean; failedUnits: string[] }[];
}
interface StatusJson {
  machines: { name: string; state: string; memoryBytes?: number }[];
}

function memAvailableBytes(): number {
  return Number(/^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;
}

/** A netns with one bridge, for the floor's machines: nothing of the host's network. */
const bareNetns = `lab-bench-bare-${tag}`;
async function bareNetwork(): Promise<void> {
  await benchRun(['ip', 'netns', 'add', bareNetns]);
  await benchRun(['ip', '-n', bareNetns, 'link', 'add', 'br0', 'type', 'bridge']);
  await benchRun(['ip', '-n', bareNetns, 'link', 'set', 'br0', 'up']);
}

/** The floor: N bare nspawn boots of `base`, each on a snapshot of it, as many at once as lab boots; until each says running. */
async function bareBoots(base: string, machines: number): Promise<number> {
  const roots = path.join(path.dirname(path.dirname(base)), 'bare');
  mkdirSync(roots, { recursive: true });
  const slots = new Semaphore(bootConcurrency(availableParallelism(), machines));
  const started: { process: ProcessRef; cgroups: string[]; root: string }[] = [];
  const begun = performance.now();
  try {
    await Promise.all(
      Array.from({ length: machines }, async (_, i) => {
        const root = path.join(roots, `b${i}`);
        await benchRun(['btrfs', 'subvolume', 'snapshot', base, root]);
        const release = await slots.acquire();
        try {
          const cgroups = labCgroups(`bench-bare-${tag}`, `b${i}`);
          const log = path.join(work, `bare-${i}.log`);
          const argv = ['nsenter', `--net=/run/netns/${bareNetns}`, ...nspawnArgv(root, `bare${tag}b${i}`), '--boot', '--network-bridge=br0', '--resolv-conf=off', '--console=read-only'];
          const process = refOf(spawnDetached(inCgroups(cgroups, argv), log))!;
          started.push({ process, cgroups, root });
          const leader = await poll(`bare machine ${i} to have a systemd`, () => {
            const pid = nspawnLeader(process);
            return pid && existsSync(`/proc/${pid}/root/run/systemd/private`) ? pid : undefined;
          }, { within: BOOT_TIMEOUT_MS, every: FAST });
          const state = await benchRun(['nsenter', `--target=${leader}`, '--all', 'systemctl', 'is-system-running', '--wait'], { allowFailure: true, timeout: BOOT_TIMEOUT_MS });
          if (!/^(running|degraded)/.test(state.stdout)) throw new Error(`bare machine ${i}: ${state.stdout}${state.stderr}`);
        } finally {
          release();
        }
      }),
    );
    return performance.now() - begun;
  } finally {
    await Promise.all(started.map((s) => stopNspawn(s.process, { hard: true })));
    for (const s of started) for (const dir of s.cgroups) removeCgroupTree(dir);
    for (const dir of labCgroupRoots(`bench-bare-${tag}`)) removeCgroupTree(dir); // the floor's own parent cgroups
    for (let i = 0; i < machines; i++) if (existsSync(path.join(roots, `b${i}`))) await benchRun(['btrfs', 'subvolume', 'delete', path.join(roots, `b${i}`)]);
  }
}

const containerRows: Record<string, unknown>[] = [];
const roomRows: Record<string, unknown>[] = [];
const basePool = containersConfig(1, 0);
try {
  // One machine brings the base image into a pool: the floor's machines are snapshots of it.
  await cli(basePool, 'up');
  const images = path.join('/var/lib/lab', `bsc1r0${tag}`, 'pool', 'images');
  const base = path.join(images, readdirSync(images).find((entry) => entry.startsWith('base@'))!);
  await cli(basePool, 'down');
  await bareNetwork();

  for (const machines of [25, 100, 200].filter(wanted)) {
    const labMs: number[] = [];
    const bareMs: number[] = [];
    let degraded = 0;
    for (let run = 0; run < runs; run++) {
      const config = containersConfig(machines, run);
      const started = performance.now();
      const up = JSON.parse((await cli(config, 'up', '--json')).stdout) as UpJson;
      labMs.push(performance.now() - started);
      degraded = Math.max(degraded, up.machines.filter((m) => m.failedUnits.length > 0).length);
      await cli(config, 'destroy');
      bareMs.push(await bareBoots(base, machines));
    }
    const row = { machines, labS: round(median(labMs) / 1000), bareS: round(median(bareMs) / 1000), ratio: round(median(labMs) / median(bareMs)), labMsPerMachine: Math.round(median(labMs) / machines), degradedWorstRun: degraded, labRunsS: labMs.map((ms) => round(ms / 1000, 1)), bareRunsS: bareMs.map((ms) => round(ms / 1000, 1)) };
    containerRows.push(row);
    console.log(JSON.stringify(row));
  }
  await cli(basePool, 'destroy');

  for (const machines of [25, 100, 200, 500].filter(wanted)) {
    const walls: number[] = [];
    const hostMb: number[] = [];
    const pssMb: number[] = [];
    let degraded = 0;
    let running = machines;
    for (let run = 0; run < runs; run++) {
      const config = roomConfig(machines, run);
      // What the whole lab takes (gw and rhfs too), shared out over its machines: no less than a contestant's own.
      const availableBefore = memAvailableBytes();
      const started = performance.now();
      const up = JSON.parse((await cli(config, 'up', '--json')).stdout) as UpJson;
      walls.push(performance.now() - started);
      const contestants = up.machines.filter((m) => /^r\d+p\d+$/.test(m.name));
      degraded = Math.max(degraded, up.machines.filter((m) => m.failedUnits.length > 0).length);
      const status = JSON.parse((await cli(config, 'status', '--json')).stdout) as StatusJson;
      running = Math.min(running, status.machines.filter((m) => m.state === 'running').length);
      hostMb.push((availableBefore - memAvailableBytes()) / machines / 1e6);
      const pss = status.machines.filter((m) => contestants.some((c) => c.name === m.name)).map((m) => (m.memoryBytes ?? 0) / 1e6);
      pssMb.push(pss.reduce((a, b) => a + b, 0) / pss.length);
      await cli(config, 'destroy');
    }
    const row = { machines, wallS: round(median(walls) / 1000), msPerMachine: Math.round(median(walls) / machines), running, degradedWorstRun: degraded, hostMbPerMachine: round(median(hostMb), 1), pssMbPerContestant: round(median(pssMb), 1), runsS: walls.map((ms) => round(ms / 1000, 1)) };
    roomRows.push(row);
    console.log(JSON.stringify(row));
  }
} finally {
  for (const config of made) await benchRun([process.execPath, lab, '--config', config, 'destroy'], { allowFailure: true });
  await benchRun(['ip', 'netns', 'delete', bareNetns], { allowFailure: true });
  rmSync(work, { recursive: true, force: true });
}

const markdown = [
  `# Scale (medians of ${runs}, side by side in one run)`,
  '',
  'Containers with the built-in stage only, fresh `lab up` against N bare nspawn boots of the base:',
  '',
  '| machines | `lab up` (s) | bare boots (s) | ratio | ms per machine (lab) | degraded (worst run) | runs, lab / bare (s) |',
  '|---|---|---|---|---|---|---|',
  ...containerRows.map((r) => `| ${r.machines} | ${r.labS} | ${r.bareS} | ${r.ratio}x | ${r.labMsPerMachine} | ${r.degradedWorstRun} | ${(r.labRunsS as number[]).join(', ')} / ${(r.bareRunsS as number[]).join(', ')} |`),
  '',
  'A room: gw, rhfs and N-2 diskless contestants on rhfs\'s root, fresh `lab up`:',
  '',
  '| machines | `lab up` (s) | ms per machine | running | degraded (worst run) | host memory per machine (MB) | PSS per contestant (MB) | runs (s) |',
  '|---|---|---|---|---|---|---|---|',
  ...roomRows.map((r) => `| ${r.machines} | ${r.wallS} | ${r.msPerMachine} | ${r.running} | ${r.degradedWorstRun} | ${r.hostMbPerMachine} | ${r.pssMbPerContestant} | ${(r.runsS as number[]).join(', ')} |`),
].join('\n');
writeBenchReport('scale', { runs, containers: containerRows, room: roomRows }, markdown);
