import { existsSync, lstatSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LabError } from '../errors.js';
import { run, type RunOptions, type RunResult } from '../exec.js';
import { isAlive, refOf } from '../state/process.js';
import type { ProcessRef } from '../state/state.js';
import { delay, waitFor } from '../wait.js';
import { awaitBoot, MACHINE_PATH, type MachineHandle, POLL_MS, type Readiness, type Runtime } from './runtime.js';


export interface MachinectlOptions {
  bridge: string;
  nspawnName(machine: string): string;
  /** Where machined looks for machine images. */
  imagesDir?: string;
  /** Where systemd-nspawn@.service reads per-machine settings. */
  nspawnDir?: string;
}

/** The settings of one machine, as a .nspawn file for systemd-nspawn@.service (the seeds' way). */
export function nspawnFile(bridge: string): string {
  return [
    '# Written by lab at every start (machinectl remove deletes it; nothing is lost).',
    '[Exec]',
    'Boot=yes',
    'PrivateUsers=no',
    'ResolvConf=off',
    'Timezone=off',
    'LinkJournal=no',
    '',
    '[Network]',
    `Bridge=${bridge}`,
    '',
  ].join('\n');
}

/**
 * Machines as machined machines, on a systemd host: a .nspawn file and an image link per
 * machine, `machinectl start/poweroff/terminate`, commands through `systemd-run -M`, and
 * readiness through `systemctl -M ... is-system-running --wait`.
 */
export class MachinectlRuntime implements Runtime {
  private readonly imagesDir: string;
  private readonly nspawnDir: string;

  constructor(private readonly options: MachinectlOptions) {
    this.imagesDir = options.imagesDir ?? '/var/lib/machines';
    this.nspawnDir = options.nspawnDir ?? '/etc/systemd/nspawn';
  }

  /** The image link and .nspawn file of a machine: what `lab destroy` removes. */
  files(machine: string): string[] {
    const name = this.options.nspawnName(machine);
    return [path.join(this.imagesDir, name), path.join(this.nspawnDir, `${name}.nspawn`)];
  }

  async start(machine: string, root: string): Promise<ProcessRef> {
    const name = this.options.nspawnName(machine);
    const [image, settings] = this.files(machine);
    mkdirSync(this.nspawnDir, { recursive: true });
    writeFileSync(settings, nspawnFile(this.options.bridge));
    mkdirSync(this.imagesDir, { recursive: true });
    if (existsSync(image) || isSymlink(image)) rmSync(image, { force: true });
    symlinkSync(root, image);
    await run(['machinectl', 'start', name]);
    let ref: ProcessRef | undefined;
    await waitFor(`the leader process of ${name} (machinectl start)`, async () => {
      const leader = await this.leader(name);
      ref = leader ? refOf(leader) : undefined;
      return ref !== undefined;
    }, 30_000);
    return ref!;
  }

  private async leader(name: string): Promise<number | undefined> {
    const result = await run(['machinectl', 'show', name, '--property=Leader', '--value'], { allowFailure: true });
    const pid = Number(result.stdout.trim());
    return result.exitCode === 0 && pid > 0 ? pid : undefined;
  }

  waitReady(handle: MachineHandle, timeoutMs: number): Promise<Readiness> {
    const name = this.options.nspawnName(handle.name);
    const died = () => (isAlive(handle.process) ? undefined : new LabError(`${handle.name} stopped while booting (journalctl -u systemd-nspawn@${name})`, 1));
    return awaitBoot(handle.name, ([command, ...args], timeout) => run([command, '-M', name, ...args], { allowFailure: true, timeout }), died, timeoutMs);
  }

  exec(handle: MachineHandle, argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const name = this.options.nspawnName(handle.name);
    return run(
      ['systemd-run', `--machine=${name}`, '--quiet', '--pipe', '--wait', '--collect', '--service-type=exec', `--setenv=PATH=${MACHINE_PATH}`, '--setenv=LANG=C.UTF-8', '--', ...argv],
      options,
    );
  }

  async shell(handle: MachineHandle): Promise<number> {
    const result = await run(['machinectl', 'shell', this.options.nspawnName(handle.name)], { inherit: true, allowFailure: true, timeout: 7 * 24 * 3600_000 });
    return result.exitCode;
  }

  async stop(handle: MachineHandle, options: { hard: boolean }): Promise<void> {
    if (!isAlive(handle.process)) return;
    const name = this.options.nspawnName(handle.name);
    await run(['machinectl', options.hard ? 'terminate' : 'poweroff', name], { allowFailure: true });
    const deadline = Date.now() + 30_000;
    while (isAlive(handle.process) || (await this.leader(name))) {
      if (Date.now() > deadline) {
        if (options.hard) throw new LabError(`${handle.name} did not stop (machinectl terminate ${name})`, 3);
        return this.stop(handle, { hard: true });
      }
      await delay(POLL_MS);
    }
  }
}

function isSymlink(file: string): boolean {
  try {
    return lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}
