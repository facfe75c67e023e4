import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { addressesByNetwork, type Inventory, inventoryOf, inventoryYamlObject, knownHosts, type LiveAddresses, sshConfig } from '../controller/inventory.js';
import type { LoadedControllerStage } from '../controller/load.js';
import { type AnsibleOutcome, describeFailures, parseAnsibleOutput } from '../controller/recap.js';
import { endControlMasters, ensureKeyPair, hostKeyOf, RUN_TAG } from '../controller/ssh.js';
import { StageError } from '../errors.js';
import { CommandError, formatArgv, MiB, run, type RunResult } from '../exec.js';
import { killByEnvironment, localAddresses } from '../host/procs.js';
import { packageRoot, privateDir } from '../paths.js';
import type { Plan, PlannedControllerStage } from '../plan/plan.js';
import type { LabState } from '../state/state.js';
import { isContainer } from '../config/topology.js';
import { loadLab } from '../stages/load.js';
import { bootInOrder } from './boot-order.js';
import type { BareLab, Lab } from './lab-types.js';
import { invalidateRoot, isRunning, recordRoot, stopMachine } from './machines.js';
import { keepFailedState, takeSnapshot } from './snapshots.js';

export interface ControllerStageReport {
  name: string;
  key: string;
  action: 'cached' | 'build';
  startedAt?: number;
  durationMs?: number;
  /** Ansible's PLAY RECAP of the run, per host (empty for a command). */
  recap: AnsibleOutcome['recap'];
}

/** What a controller stage's command finds in its environment. */
export interface ControllerFiles {
  inventory: string;
  sshConfig: string;
  knownHosts: string;
  /** The lab's CLI for this lab, as one executable (`$LAB exec gw -- ...`). */
  labCommand: string;
  /** SSH's control sockets (ControlPersist), ended after each stage. */
  controlSockets: string;
}

/**
 * The lab's key pair, made before anything is planned: the ssh stage's key includes the public
 * key, so a lab that just made its pair loads its stages again.
 */
export async function prepareControllerKey(lab: Lab): Promise<void> {
  if (lab.config.controller.length === 0) return;
  if (await ensureKeyPair(lab.dirs.sshKey, `lab-${lab.config.name}`)) lab.loaded = await loadLab(lab.config, lab.topology, lab.configFile);
}

/** The addresses DHCP gave the running containers (diskless ones too), read from their namespaces (/proc). */
export async function liveAddresses(lab: BareLab, state: LabState): Promise<LiveAddresses> {
  const live = new Map<string, Map<string, string>>();
  for (const machine of lab.topology.machines.filter((m) => isContainer(m) && isRunning(state, m.name))) {
    const leader = await lab.runtime.leaderPid({ name: machine.name, process: state.machines[machine.name]!.process! });
    if (leader !== undefined) live.set(machine.name, addressesByNetwork(lab.topology, machine, localAddresses(leader)));
  }
  return live;
}

export async function labInventory(lab: BareLab, state: LabState): Promise<Inventory> {
  return inventoryOf(lab.config, lab.topology, await liveAddresses(lab, state), path.join(lab.dirs.controllerDir, 'ssh_config'));
}

/** Writes lab's inventory, SSH config, known hosts (each machine's host key, from its root) and `$LAB`. */
export async function writeControllerFiles(lab: BareLab, state: LabState, sessionTag?: string): Promise<ControllerFiles> {
  const dir = lab.dirs.controllerDir;
  privateDir(dir);
  const inventory = await labInventory(lab, state);
  const files: ControllerFiles = {
    inventory: path.join(dir, 'inventory.yml'),
    sshConfig: inventory.sshConfig!,
    knownHosts: path.join(dir, 'known_hosts'),
    labCommand: path.join(dir, 'lab'),
    controlSockets: path.join(dir, 'cm'),
  };
  const keys = new Map<string, string>();
  for (const host of inventory.hosts.filter((h) => h.kind === 'container')) {
    const key = hostKeyOf(lab.dirs.machineRoot(host.name));
    if (key) keys.set(host.name, key);
  }
  writeFileSync(files.inventory, stringify(inventoryYamlObject(inventory)));
  writeFileSync(files.sshConfig, sshConfig(inventory, { key: lab.dirs.sshKey, knownHosts: files.knownHosts, sessionTag }));
  writeFileSync(files.knownHosts, knownHosts(keys));
  const cli = [process.execPath, path.join(packageRoot, 'bin', 'lab.js'), ...(lab.configFile ? ['--config', lab.configFile] : []), '--name', lab.config.name];
  writeFileSync(files.labCommand, `#!/bin/sh\n# lab ${lab.config.name}'s CLI, for controller stages\nexec ${formatArgv(cli)} "$@"\n`, { mode: 0o700 });
  mkdirSync(files.controlSockets, { recursive: true, mode: 0o700 });
  return files;
}

/** Ansible's settings for the lab: its SSH config and key, strict host keys, no colour, nothing written under ~/.ansible. */
function controllerEnv(lab: BareLab, files: ControllerFiles, stage: string): Record<string, string> {
  const ansibleHome = path.join(lab.dirs.controllerDir, 'ansible');
  return {
    LAB: files.labCommand,
    LAB_NAME: lab.config.name,
    LAB_STAGE: stage,
    LAB_INVENTORY: files.inventory,
    LAB_SSH_CONFIG: files.sshConfig,
    LAB_SSH_KEY: lab.dirs.sshKey,
    ANSIBLE_SSH_ARGS: `-F ${files.sshConfig} -o ControlMaster=auto -o ControlPersist=60s`,
    // A team's ansible.cfg may name its own control path (SADM's .ssh_mux/): lab's sockets are ended after each stage.
    ANSIBLE_SSH_CONTROL_PATH: `${files.controlSockets}/%%C`,
    ANSIBLE_PRIVATE_KEY_FILE: lab.dirs.sshKey,
    ANSIBLE_REMOTE_USER: 'root',
    ANSIBLE_HOST_KEY_CHECKING: 'True',
    ANSIBLE_PIPELINING: 'True',
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_FORCE_COLOR: '0',
    ANSIBLE_RETRY_FILES_ENABLED: 'False',
    ANSIBLE_HOME: ansibleHome,
    ANSIBLE_LOCAL_TEMP: path.join(ansibleHome, 'tmp'),
    ANSIBLE_STDOUT_CALLBACK: 'default',
    PYTHONUNBUFFERED: '1',
  };
}

export function controllerArgv(stage: LoadedControllerStage, files: Pick<ControllerFiles, 'inventory'>): string[] {
  const { config } = stage;
  if (config.run) return [...config.run];
  return [
    'ansible-playbook',
    '-i',
    files.inventory,
    ...config.inventory.flatMap((file) => ['-i', file]),
    ...(config.tags?.length ? ['--tags', config.tags.join(',')] : []),
    ...(config.limit ? ['--limit', config.limit] : []),
    ...(config.extraVars ? ['--extra-vars', JSON.stringify(config.extraVars)] : []),
    config.playbook!,
  ];
}

/** The containers a controller stage spans: every one (a vm has no root to snapshot). */
const containers = (lab: BareLab) => lab.topology.machines.filter((m) => m.kind === 'container').map((m) => m.name);

/**
 * Runs one controller stage against the running lab, from the lab's namespace in sandbox mode.
 * On its deadline, the command ends with everything it started on the host, and every SSH
 * session in the machines ends with what it started there.
 */
export async function applyControllerStage(lab: BareLab, state: LabState, stage: LoadedControllerStage, logFile: string, onLine?: (line: string) => void): Promise<{ result: RunResult; outcome: AnsibleOutcome; timedOut: boolean }> {
  const tag = `${RUN_TAG}=${randomUUID()}`;
  const files = await writeControllerFiles(lab, state, tag);
  mkdirSync(path.dirname(logFile), { recursive: true });
  rmSync(logFile, { force: true });
  let timedOut = false;
  try {
    const result = await run([...lab.network.netnsPrefix, ...controllerArgv(stage, files)], {
      cwd: stage.cwd,
      env: { ...controllerEnv(lab, files, stage.name), [RUN_TAG]: tag.slice(RUN_TAG.length + 1) },
      timeout: stage.config.timeoutSeconds * 1000,
      logFile,
      logLimitBytes: lab.config.stageLimits.logMiB * MiB,
      onLine,
      allowFailure: true,
      // On the host beyond the command's process group, and in the machines: every process with the run's tag.
      endAll: async () => void killByEnvironment(tag),
    }).catch((error: unknown) => {
      if (!(error instanceof CommandError && error.timedOut)) throw error;
      timedOut = true;
      return error.result;
    });
    return { result, outcome: parseAnsibleOutput(result.stdout), timedOut };
  } finally {
    await endControlMasters(files.controlSockets);
  }
}

/**
 * The controller stages that are not cached, in order, on the running lab (its machines at the
 * last cached controller stage, or at their own last stage). After each, every machine is
 * stopped cleanly, snapshotted under the stage's key and booted again, so that `lab restore
 * <stage>` brings the whole lab back to just after it. A failed stage keeps every machine's root
 * as `<stage>.failed` and leaves the machines running.
 */
export async function runControllerStages(lab: Lab, state: LabState, plan: Plan, progress: (line: string) => void): Promise<ControllerStageReport[]> {
  const reports: ControllerStageReport[] = plan.controller.map((s) => ({ name: s.name, key: s.key, action: s.action, recap: [] }));
  const names = containers(lab);
  for (const [index, planned] of plan.controller.entries()) {
    if (planned.action === 'cached') continue;
    const stage = lab.loaded.controller.find((s) => s.name === planned.name)!;
    const report = reports[index]!;
    report.startedAt = Date.now();
    // From here until the snapshots, the roots hold half a stage: the next lab up restores them.
    for (const name of names) invalidateRoot(lab, state, name);
    const logFile = lab.dirs.stageLog('controller', stage.name);
    progress(`${stage.name}: running ${stage.config.playbook ? path.basename(stage.config.playbook) : stage.config.run!.join(' ')} (${index + 1}/${plan.controller.length})`);
    const { result, outcome, timedOut } = await applyControllerStage(lab, state, stage, logFile, (line) => {
      const task = /^(?:TASK|PLAY) \[(.+?)\]/.exec(line)?.[1];
      if (task) progress(`${stage.name}: ${task}`);
    });
    report.recap = outcome.recap;
    if (timedOut || result.exitCode !== 0) await failControllerStage(lab, names, stage, planned, { outcome, result, timedOut, logFile });
    progress(`${stage.name}: snapshotting every machine at rest`);
    await Promise.all(names.map((name) => stopMachine(lab, state, name, { hard: false })));
    await Promise.all(names.map((name) => takeSnapshot(lab, name, planned.name, planned.key)));
    for (const name of names) recordRoot(lab, state, name, { stage: planned.name, key: planned.key });
    progress(`${stage.name}: booting the lab again`);
    await bootInOrder(lab, state, names, { waitForNetwork: true });
    report.durationMs = Date.now() - report.startedAt;
  }
  return reports;
}

async function failControllerStage(
  lab: Lab,
  names: readonly string[],
  stage: LoadedControllerStage,
  planned: PlannedControllerStage,
  { outcome, result, timedOut, logFile }: { outcome: AnsibleOutcome; result: RunResult; timedOut: boolean; logFile: string },
): Promise<never> {
  const kept = (await Promise.all(names.map((name) => keepFailedState(lab, name, planned.name, planned.key)))).filter(Boolean);
  const why = timedOut ? `timed out after ${stage.config.timeoutSeconds} s` : `exit ${result.exitCode}`;
  const failures = describeFailures(outcome) || (result.stdout + result.stderr).trimEnd().split('\n').slice(-10).join('\n');
  throw new StageError(`controller stage ${planned.name} failed (${why}):\n${failures}`, {
    machine: 'controller',
    stage: planned.name,
    logFile,
    hint: `the machines are still running: look inside with 'lab shell <machine>'; full log: ${logFile}${kept.length ? `; every root at the failure is kept: lab restore ${planned.name}.failed` : ''}`,
  });
}
