import path from 'node:path';
import type { HostDriver } from '../driver.js';
import { HostError } from '../errors.js';
import { run, type RunOptions, type RunResult } from '../exec.js';
import { inCgroups, labCgroups, removeCgroupTree } from '../host/cgroups.js';
import { findProcesses } from '../host/procs.js';
import type { Tool } from '../host/prereq.js';
import { isAlive, signalProcess } from '../state/process.js';
import type { ProcessRef } from '../state/state.js';
import { type Bind, bindOptions, NSPAWN_TOOLS, nspawnArgv, stopNspawn } from './nspawn-process.js';
import { MACHINE_PATH } from './runtime.js';

/** What a build step binds (stage contexts take it from here, with the runner). */
export type { Bind };

export interface BuildStepOptions extends RunOptions {
  /** Host paths bound into the root while the command runs. */
  binds?: readonly Bind[];
  /** A lock file: the command waits its turn on it (a shared package cache), across machines and labs. */
  exclusive?: string;
}

const EXCLUSIVE_WAIT_S = 1800;
const MAX_SWEEPS = 10;

/**
 * What nspawn says at the end of every --pipe run on a host whose /run is not a tmpfs (its
 * directory for mounts into the machine is kept): nothing about the step, so not in its log or error.
 */
const NSPAWN_PROPAGATE_NOTICE = /^Attempted to remove disk file system under "\/run\/systemd\/nspawn\/propagate\/[^"]*", and we can't allow that\.$/m;

/**
 * Build steps: commands run in a stopped machine's root with `systemd-nspawn --pipe`, like a
 * chroot with a real /proc and /sys, whatever the runtime that boots the machines. They use the
 * host's network and resolver (package downloads never cross the lab network); the machine's
 * own /etc/resolv.conf is left as it is.
 */
export class BuildSteps implements HostDriver {
  constructor(
    /** Where the lab builds in: its machines' roots and its base images (lab image upgrade). */
    private readonly buildDirs: readonly string[],
    private readonly labName: string,
  ) {}

  async run(root: string, name: string, argv: readonly string[], options: BuildStepOptions = {}): Promise<RunResult> {
    // A cgroup of its own, as booted machines have: nspawns never share one (see host/cgroups.ts).
    const cgroups = labCgroups(this.labName, `build-${path.basename(root)}`);
    try {
      return await this.runIn(cgroups, root, name, argv, options);
    } finally {
      for (const dir of cgroups) removeCgroupTree(dir);
    }
  }

  private runIn(cgroups: string[], root: string, name: string, argv: readonly string[], options: BuildStepOptions): Promise<RunResult> {
    const nspawn = [
      ...nspawnArgv(root, name),
      '--pipe',
      '--resolv-conf=bind-host',
      ...bindOptions(options.binds ?? []),
      '--setenv=DEBIAN_FRONTEND=noninteractive',
      `--setenv=PATH=${MACHINE_PATH}`,
      '--',
      ...argv,
    ];
    return run([...(options.exclusive ? ['flock', `--timeout=${EXCLUSIVE_WAIT_S}`, options.exclusive] : []), ...inCgroups(cgroups, nspawn)], { ...options, dropLines: NSPAWN_PROPAGATE_NOTICE });
  }

  /**
   * Build steps of a `lab up` or `lab image upgrade` that was killed: nspawn processes on a root or
   * an image of this lab, and the `flock` wrappers queued to start more (their argv holds the nspawn
   * argv; an nspawn outlives its killed wrapper, holding the install lock). Wrappers first, so that
   * none starts a new step while the running ones are ended.
   */
  strays(): { process: ProcessRef; wrapper: boolean }[] {
    const prefixes = this.buildDirs.map((dir) => `--directory=${dir}/`);
    return findProcesses((argv) => argv.includes('--pipe') && argv.some((a) => prefixes.some((prefix) => a.startsWith(prefix))))
      .map(({ process, argv }) => ({ process, wrapper: !argv[0]?.endsWith('systemd-nspawn') }))
      .sort((a, b) => Number(b.wrapper) - Number(a.wrapper));
  }

  tools(): Tool[] {
    return [
      ...NSPAWN_TOOLS,
      { command: 'flock', debianPackage: 'util-linux', why: 'queues package installs on the shared cache' },
      { command: 'systemctl', debianPackage: 'systemd', why: 'enables units in stopped roots (systemctl --root)' },
    ];
  }

  async leftovers(): Promise<string[]> {
    return this.strays().map(({ process, wrapper }) => `${wrapper ? 'queued build step' : 'build step'} ${process.pid} of a lab command that was killed`);
  }

  /**
   * Ends every stray build step. Again until none is found: a queued wrapper may take the install
   * lock its killed holder released, and start a step, between one look and the kills.
   */
  async destroy(): Promise<void> {
    for (let round = 0; round < MAX_SWEEPS; round++) {
      const strays = this.strays();
      if (strays.length === 0) return;
      for (const { process, wrapper } of strays) {
        if (!wrapper) await stopNspawn(process, { hard: true });
        else if (isAlive(process)) signalProcess(process.pid, 'SIGKILL');
      }
    }
    const left = this.strays();
    if (left.length) throw new HostError(`build steps of an earlier lab up keep coming back: ${left.map((s) => s.process.pid).join(', ')}`, 'lab destroy, then lab up');
  }

  describe(): string {
    return 'build steps: systemd-nspawn --pipe on stopped roots, host network';
  }
}
