import { bindTargetProblem, plainPathProblem } from './binds.js';
import type { DisklessRoot, LabConfig, MachineConfig, RoomConfig } from './schema.js';

/**
 * Diskless machines (SADM's contestant machines): booted read-only from a directory of another
 * machine's root, with temporary file systems over what a session writes. What the config says of
 * them, pure: which machines boot from which root, the rooms' names, what is wrong with their settings.
 */

/** SADM's temporary file systems over the paths a contestant's session writes (its container_setup_pas-r11p11.sh). */
export const SADM_TMPFS: readonly string[] = ['/home', '/var/log', '/var/tmp', '/var/spool/mail', '/var/lib/isolate', '/var/lib/lightdm'];

export function isDiskless(machine: Pick<MachineConfig, 'kind'>): boolean {
  return machine.kind === 'diskless';
}

/** The diskless machines that boot from `machine`'s root. */
export function disklessOn(config: Pick<LabConfig, 'machines'>, machine: string): string[] {
  return config.machines.filter((m) => isDiskless(m) && m.root?.machine === machine).map((m) => m.name);
}

/** The paths a diskless machine has tmpfs over (its own list, else SADM's); undefined for a volatile overlay over its whole root. */
export function tmpfsOf(machine: Pick<MachineConfig, 'tmpfs' | 'volatile'>): readonly string[] | undefined {
  return machine.volatile ? undefined : (machine.tmpfs ?? SADM_TMPFS);
}

const twoDigits = (n: number) => String(n).padStart(2, '0');

/** A room's machines as SADM names them: r<row>p<place>, `perRow` places a row, rows from `firstRow`. */
export function roomMachineNames(room: Pick<RoomConfig, 'machines' | 'perRow' | 'firstRow'>): string[] {
  return Array.from({ length: room.machines }, (_, i) => `r${twoDigits(room.firstRow + Math.floor(i / room.perRow))}p${twoDigits((i % room.perRow) + 1)}`);
}

/** Where a machine's settings are in the config: `machines.<i>`, or `rooms.<i>` for a machine a room made. */
export function machineField(config: Pick<LabConfig, 'machines' | 'rooms'>, name: string): string {
  const room = config.rooms.findIndex((r) => roomMachineNames(r).includes(name));
  return room >= 0 ? `rooms.${room}` : `machines.${config.machines.findIndex((m) => m.name === name)}`;
}

/** What is wrong with a diskless machine's (or a room's) root and writable paths, naming the field; undefined when nothing is. */
export function disklessProblem(config: Pick<LabConfig, 'machines'>, spec: { root?: DisklessRoot; tmpfs?: readonly string[]; volatile?: 'overlay' }, field: string): string | undefined {
  const { root } = spec;
  if (!root) return `${field}.root: a diskless machine boots a directory of another machine: give root: { machine, path }`;
  const names = config.machines.map((m) => m.name);
  const owner = config.machines.find((m) => m.name === root.machine);
  if (!owner) return `${field}.root.machine: unknown machine '${root.machine}' (machines: ${names.join(', ')})`;
  if (isDiskless(owner)) return `${field}.root.machine: '${root.machine}' is diskless itself: a root is a directory of a machine lab builds in stages`;
  if (owner.kind === 'vm') return `${field}.root.machine: '${root.machine}' is a vm: lab has no root of it to boot from`;
  const path = plainPathProblem(root.path, `in ${root.machine}'s root`, 'a root path');
  if (path) return `${field}.root.path: ${path}`;
  if (spec.tmpfs && spec.volatile) return `${field}.volatile: either tmpfs or volatile: overlay (an overlay makes the whole root writable)`;
  for (const [j, dir] of (spec.tmpfs ?? []).entries()) {
    if (dir === '/') return `${field}.tmpfs.${j}: a tmpfs over the whole root: use volatile: overlay`;
    const problem = bindTargetProblem(dir);
    if (problem) return `${field}.tmpfs.${j}: ${problem}`;
    if (spec.tmpfs!.indexOf(dir) !== j) return `${field}.tmpfs.${j}: '${dir}' is listed twice`;
  }
  return undefined;
}
