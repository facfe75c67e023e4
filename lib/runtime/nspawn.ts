import { mkdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { HostError, LabError } from '../errors.js';
import { run, type RunOptions, type RunResult, spawnDetached, tail } from '../exec.js';
import { childrenOf, isAlive, refOf } from '../state/process.js';
import type { ProcessRef } from '../state/state.js';
import { delay } from '../wait.js';
import { awaitBoot, MACHINE_PATH, type MachineHandle, POLL_MS, type Readiness, type Runtime } from './runtime.js';

const ORDERLY_STOP_MS = 30_000;

export interface NspawnOptions {
  /** nsenter argv prefix that puts nspawn into the lab's netns (sandbox mode), or empty (host mode). */
  netnsPrefix: readonly string[];
  bridge: string;
  nspawnName(machine: string): string;
  consoleLog(machine: string): string;
}

/**
 * The container's PID 1: the child of nspawn that lives in a PID namespace of its own. (nspawn's
 * first child is a short-lived helper in nspawn's own namespace that forks the real one.)
 */
function nspawnLeader(process: ProcessRef): number | undefined {
  if (!isAlive(process)) return undefined;
  const own = pidNamespaceOf(process.pid);
  return childrenOf(process.pid).find((child) => {
    const namespace = pidNamespaceOf(child);
    return namespace !== undefined && namespace !== own;
  });
}

function pidNamespaceOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return undefined;
  }
}

/**
 * Machines as `systemd-nspawn --boot` processes started directly by the lab (no machined):
 * detached, so they outlive `lab`, and attached to the zone bridge with a veth.
 */
export class NspawnRuntime implements Runtime {
  constructor(private readonly options: NspawnOptions) {}

  async start(machine: string, root: string): Promise<ProcessRef> {
    const log = this.options.consoleLog(machine);
    mkdirSync(path.dirname(log), { recursive: true });
    const pid = spawnDetached(
      [
        ...this.options.netnsPrefix,
        'systemd-nspawn',
        '--quiet',
        `--directory=${root}`,
        `--machine=${this.options.nspawnName(machine)}`,
        // Without machined/systemd as PID 1 on the host, nspawn must neither register nor make its own scope.
        '--register=no',
        '--keep-unit',
        '--boot',
        `--network-bridge=${this.options.bridge}`,
        '--resolv-conf=off',
        '--timezone=off',
        '--link-journal=no',
        '--console=read-only',
      ],
      log,
    );
    const ref = refOf(pid);
    if (!ref) throw new HostError(`systemd-nspawn for ${machine} exited at once:\n${tail(readFileSync(log, 'utf8'), 15)}`);
    return ref;
  }

  waitReady({ name: machine, process }: MachineHandle, timeoutMs: number): Promise<Readiness> {
    const died = () => (isAlive(process) ? undefined : new LabError(`${machine} stopped while booting:\n${tail(readFileSync(this.options.consoleLog(machine), 'utf8'), 15)}`, 1));
    return awaitBoot(
      machine,
      async (argv, timeout) => {
        const leader = nspawnLeader(process);
        return leader ? this.execIn(leader, argv, { allowFailure: true, timeout }) : undefined;
      },
      died,
      timeoutMs,
    );
  }

  exec({ process }: MachineHandle, argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const leader = nspawnLeader(process);
    if (!leader) throw new LabError('the machine is not running', 1);
    return this.execIn(leader, argv, options);
  }

  private execIn(leader: number, argv: readonly string[], options: RunOptions): Promise<RunResult> {
    // A clean environment: the host's variables mean nothing inside the machine.
    const env = ['env', '-i', `PATH=${MACHINE_PATH}`, 'LANG=C.UTF-8', 'HOME=/root', `TERM=${process.env.TERM ?? 'dumb'}`];
    return run(['nsenter', `--target=${leader}`, '--all', '--', ...env, ...argv], options);
  }

  async shell(handle: MachineHandle): Promise<number> {
    const result = await this.exec(handle, ['/bin/bash', '--login'], { inherit: true, allowFailure: true, timeout: 7 * 24 * 3600_000 });
    return result.exitCode;
  }

  stop({ process }: MachineHandle, options: { hard: boolean }): Promise<void> {
    return stopNspawn(process, options);
  }
}

/** Stops an nspawn process by pid (also one the state lost track of, found by its root's path). */
export async function stopNspawn(process: ProcessRef, options: { hard: boolean }): Promise<void> {
  if (!isAlive(process)) return;
  if (options.hard) {
    // Killing nspawn itself would orphan the machine; killing its PID 1 ends the whole PID namespace.
    // Just after a start, PID 1 may not exist yet: give it a moment to appear.
    let leader = nspawnLeader(process);
    for (const deadline = Date.now() + 2000; !leader && isAlive(process) && Date.now() < deadline; leader = nspawnLeader(process)) await delay(POLL_MS);
    globalThis.process.kill(leader ?? process.pid, 'SIGKILL');
  } else {
    globalThis.process.kill(process.pid, 'SIGTERM'); // nspawn turns it into an orderly shutdown
  }
  const deadline = Date.now() + ORDERLY_STOP_MS;
  while (isAlive(process)) {
    if (Date.now() > deadline) return stopNspawn(process, { hard: true });
    await delay(POLL_MS);
  }
}

/**
 * Runs a command in a stopped machine's root, like a chroot with a real /proc and /sys.
 * It uses the host's network and resolver (package downloads never cross the lab network);
 * the machine's own /etc/resolv.conf is left as it is.
 */
export async function runOffline(
  root: string,
  name: string,
  argv: readonly string[],
  options: RunOptions & { binds?: readonly string[]; exclusive?: string } = {},
): Promise<RunResult> {
  return run(
    [
      // Serialises users of a shared resource (the package cache) across machines and labs.
      ...(options.exclusive ? ['flock', '--timeout=1800', options.exclusive] : []),
      'systemd-nspawn',
      '--quiet',
      `--directory=${root}`,
      `--machine=${name}`,
      '--register=no',
      '--keep-unit',
      '--pipe',
      '--resolv-conf=bind-host',
      '--timezone=off',
      '--link-journal=no',
      ...(options.binds ?? []).map((bind) => `--bind=${bind}`),
      '--setenv=DEBIAN_FRONTEND=noninteractive',
      `--setenv=PATH=${MACHINE_PATH}`,
      '--',
      ...argv,
    ],
    options,
  );
}
