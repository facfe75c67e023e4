import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { run } from '../exec.js';
import { findCommand, requiredTools } from '../host/prereq.js';
import { isAlive } from '../state/process.js';
import { MachinectlRuntime } from '../runtime/machinectl.js';
import { readState } from '../state/state.js';
import type { Lab } from './lab.js';
import { strayProcesses } from './lifecycle.js';

export interface DoctorReport {
  ready: boolean;
  root: boolean;
  tools: { command: string; package: string; found: boolean; why: string }[];
  profile: { runtime: string; network: string; storage: string; image: string; why: string[] };
  leftovers: string[];
  otherLabs: string[];
}

function existsOrLink(file: string): boolean {
  try {
    lstatSync(file);
    return true;
  } catch {
    return false;
  }
}

const readText = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trim() : '');

export async function doctor(lab: Lab): Promise<DoctorReport> {
  const tools = requiredTools(lab.config).map((t) => ({ command: t.command, package: t.debianPackage, found: Boolean(findCommand(t.command)), why: t.why }));
  const root = process.getuid?.() === 0;
  const { profile } = lab;
  const host = `systemd as PID 1: ${profile.systemdPid1 ? 'yes' : 'no'}, machined: ${profile.machined ? 'running' : 'no'}, networkd: ${profile.networkd ? 'running' : 'no'}`;
  const fallback = !profile.systemdPid1 && lab.image.source === 'tarball' ? ' (the CoreOS fallback: tarball image, lab-run machines and network)' : '';
  const why = [
    host,
    `runtime ${profile.runtime}: ${profile.why}`,
    `network mode ${lab.config.network.mode}${lab.config.network.mode === 'sandbox' ? ' (hermetic: nothing leaves the machine)' : ''}`,
    `storage ${lab.config.storage.kind}: ${lab.storage.describe()}`,
    `image ${lab.image.description}${fallback}`,
  ];
  return {
    ready: root && tools.every((t) => t.found),
    root,
    tools,
    profile: {
      runtime: profile.runtime === 'machinectl' ? 'machinectl (machined, systemd-nspawn@ units)' : 'nspawn (started by lab, no machined)',
      network: lab.network.describe(),
      storage: lab.storage.describe(),
      image: `${lab.image.source}: ${lab.image.description} (key ${lab.image.key})`,
      why,
    },
    leftovers: root ? await leftovers(lab) : ['(run as root to look for leftovers)'],
    otherLabs: existsSync(lab.config.stateDir) ? readdirSync(lab.config.stateDir).filter((name) => name !== lab.config.name) : [],
  };
}

/** What this lab has on the host right now; after `lab destroy` the list is empty. */
export async function leftovers(lab: Lab): Promise<string[]> {
  const found: string[] = [];
  const state = existsSync(lab.dirs.stateFile) ? readState(lab.dirs.stateFile) : undefined;
  for (const [name, ms] of Object.entries(state?.machines ?? {})) if (isAlive(ms.process)) found.push(`machine ${name} running (pid ${ms.process.pid})`);
  const strays = strayProcesses(lab);
  for (const stray of [...strays.machines, ...strays.servers]) found.push(`process ${stray.pid} of this lab`);
  for (const stray of strays.builds) found.push(`build step ${stray.pid} of a lab up that was killed`);
  for (const ns of [lab.names.netns, lab.names.wanNetns]) if (existsSync(`/run/netns/${ns}`)) found.push(`network namespace ${ns}`);
  if (lab.runtime instanceof MachinectlRuntime) {
    for (const machine of lab.config.machines) for (const file of lab.runtime.files(machine.name)) if (existsOrLink(file)) found.push(`machinectl file ${file}`);
  }
  if (lab.config.network.mode === 'host') {
    if (existsSync(`/sys/class/net/${lab.names.bridge}`)) found.push(`bridge ${lab.names.bridge}`);
    const table = await run(['nft', 'list', 'table', 'ip', lab.names.nftTable], { allowFailure: true });
    if (table.exitCode === 0) found.push(`nft table ip ${lab.names.nftTable}`);
  }
  const mounts = readText('/proc/self/mounts').split('\n').map((line) => line.split(' ')[1] ?? '');
  for (const mount of mounts) if (mount === lab.dirs.state || mount.startsWith(`${lab.dirs.state}/`)) found.push(`mount ${mount}`);
  if (existsSync(lab.dirs.poolImage)) {
    const loops = await run(['losetup', '-j', lab.dirs.poolImage], { allowFailure: true });
    for (const line of loops.stdout.split('\n').filter(Boolean)) found.push(`loop device ${line.split(':')[0]}`);
  }
  if (existsSync(lab.dirs.state)) found.push(`state directory ${lab.dirs.state}`);
  return found;
}
