import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathProblems } from '../config/load.js';
import { containerCgroup } from '../host/cgroups.js';
import { checkLimits, type LimitCheck } from '../host/limits.js';
import { findCommand, uniqueTools } from '../host/prereq.js';
import { readFrozen } from '../state/frozen.js';
import { isAlive } from '../state/process.js';
import { type LabState, readState } from '../state/state.js';
import { interruptedWork } from './recover.js';
import { hostDrivers, labTools } from './lab.js';
import type { BareLab } from './lab-types.js';

export interface DoctorReport {
  ready: boolean;
  root: boolean;
  tools: { command: string; package: string; found: boolean; why: string }[];
  /** What keeps the lab from running here besides tools (a runtime or image source the host cannot give). */
  problems: string[];
  profile: { runtime: string; network: string; storage: string; image: string; packages: string; why: string[] };
  /** Kernel limits the lab's machines share, against what its size needs (lab up raises what is short). */
  limits: LimitCheck[];
  leftovers: string[];
  otherLabs: string[];
}

/** A report, never a failure: every missing tool and every problem is a row. */
export async function doctor(lab: BareLab): Promise<DoctorReport> {
  const tools = uniqueTools(labTools(lab, { image: true })).map((t) => ({ command: t.command, package: t.debianPackage, found: Boolean(findCommand(t.command)), why: t.why }));
  const root = process.getuid?.() === 0;
  const { profile } = lab;
  const problems: string[] = [];
  if (profile.problem) problems.push(`${profile.problem.message} (${profile.problem.hint})`);
  try {
    await lab.image.check();
  } catch (error) {
    problems.push((error as Error).message);
  }
  if (root) problems.push(...(await frozenMachines(lab, readState(lab.dirs.stateFile))));
  problems.push(...pathProblems(lab.config, lab.configFile, process.cwd())); // opened without this check, so that doctor works whatever is gone
  const host = `systemd as PID 1: ${profile.systemdPid1 ? 'yes' : 'no'}, machined: ${profile.machined ? 'running' : 'no'}, networkd: ${profile.networkd ? 'running' : 'no'}`;
  const fallback = !profile.systemdPid1 && lab.image.source === 'tarball' ? ' (the CoreOS fallback: tarball image, lab-run machines and network)' : '';
  const why = [
    host,
    `runtime ${profile.runtime}: ${profile.why}`,
    `network mode ${lab.config.network.mode}${lab.config.network.mode === 'sandbox' ? ' (hermetic: nothing leaves the machine)' : ''}`,
    `storage ${lab.config.storage.kind}: ${lab.storage.describe()}`,
    `image ${lab.image.describe()}${fallback}`,
    ...(lab.vms.names.length && tools.find((t) => t.command === 'qemu-system-x86_64')?.found ? [`vms: ${lab.vms.describe()}, ${await lab.vms.accelerator()}`] : []),
  ];
  return {
    ready: root && tools.every((t) => t.found) && problems.length === 0,
    root,
    tools,
    problems,
    profile: {
      runtime: lab.runtime.describe(),
      network: lab.network.describe(),
      storage: lab.storage.describe(),
      image: `${lab.image.source}: ${lab.image.describe()} (key ${lab.image.key})`,
      packages: lab.packageProxy.describe(),
      why,
    },
    limits: checkLimits(lab.config.machines.length),
    leftovers: root ? await leftovers(lab) : ['(run as root to look for leftovers)'],
    otherLabs: existsSync(lab.config.stateDir) ? readdirSync(lab.config.stateDir).filter((name) => name !== lab.config.name) : [],
  };
}

/** Running containers whose cgroup is frozen: they answer nothing. Opening the lab thawed what a killed command left. */
async function frozenMachines(lab: BareLab, state: LabState): Promise<string[]> {
  const frozen: string[] = [];
  for (const [name, machine] of Object.entries(state.machines)) {
    const { leaderPid } = lab.backendOf(name);
    if (!leaderPid || !isAlive(machine.process)) continue;
    const leader = await leaderPid(lab, { name, process: machine.process }).catch(() => undefined);
    const cgroup = leader === undefined ? undefined : containerCgroup(leader);
    if (cgroup && readFileSync(path.join(cgroup, 'cgroup.freeze'), 'utf8').trim() === '1') frozen.push(name);
  }
  if (!frozen.length) return [];
  const record = readFrozen(lab.dirs.frozenFile);
  const by = record && isAlive(record.by) ? `by 'lab ${record.command}' (pid ${record.by.pid}, still running)` : 'and no lab command that froze them is running (thaw: write 0 to cgroup.freeze of their cgroups)';
  return [`machines frozen ${by}: ${frozen.join(', ')}`];
}

/** What this lab has on the host right now, from every driver; after `lab destroy` the list is empty. */
export async function leftovers(lab: BareLab): Promise<string[]> {
  const state = readState(lab.dirs.stateFile);
  const found = (await Promise.all(hostDrivers(lab).map((driver) => driver.leftovers(state)))).flat();
  for (const item of interruptedWork(lab)) found.push(`left by an interrupted command: ${item.what}`);
  if (existsSync(lab.dirs.state)) found.push(`state directory ${lab.dirs.state}`);
  return found;
}
