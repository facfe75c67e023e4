import type { z } from 'zod';
import { UsageError } from '../errors.js';
import { bindTargetProblem } from './binds.js';
import { isHostIn, overlaps, parseSubnet } from './ip.js';
import { topologicalOrder } from '../plan/graph.js';
import { type LabConfig, labConfigSchema, type MachineConfig, machineSchema } from './schema.js';
import { disklessProblem, isDiskless, roomMachineNames } from './diskless.js';
import { publishProblem } from '../network/ports.js';
import { hasSsh, limitTokens } from '../controller/inventory.js';
import { hasStages, machineDependencies, topologyOf, topologyProblem } from './topology.js';

/** Validates shape (zod) and meaning (names, references, addresses); the message names the field. */
export function validateConfig(input: unknown, file?: string): LabConfig {
  const checked = checkConfig(input);
  if (!checked.config) throw new UsageError(`invalid config${file ? ` in ${file}` : ''}: ${checked.issues.map((i) => i.message).join('; ')}`);
  return checked.config;
}

/** A problem of a config: its message, which starts with the field, and the field's path when zod gives it. */
export interface ConfigIssue {
  path?: readonly PropertyKey[];
  message: string;
}

/**
 * The config, or what is wrong with it: every problem of its shape (zod), else the first of its
 * meaning (those checks read a config of the right shape, one after the other).
 */
export function checkConfig(input: unknown): { config: LabConfig; issues?: undefined } | { config?: undefined; issues: ConfigIssue[] } {
  const parsed = labConfigSchema.safeParse(input);
  if (!parsed.success) return { issues: parsed.error.issues.map(zodIssue) };
  const rooms = roomsProblem(parsed.data);
  if (rooms) return { issues: [{ message: rooms }] };
  const config = withRooms(parsed.data);
  const problem = semanticProblem(config);
  return problem ? { issues: [{ message: problem }] } : { config };
}

function zodIssue(issue: z.core.$ZodIssue): ConfigIssue {
  // An unknown key is an issue of its object: point at the key itself.
  const path = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]!] : issue.path;
  return { path, message: `${issue.path.length ? issue.path.join('.') : '(root)'}: ${issue.message}` };
}

/** The rooms' settings, before their machines join the others: what a room gets wrong is named as the room's. */
function roomsProblem(config: LabConfig): string | undefined {
  const owners = new Map(config.machines.map((m, i) => [m.name, `machines.${i}`]));
  for (const [i, room] of config.rooms.entries()) {
    const field = `rooms.${i}`;
    const lastRow = room.firstRow + Math.ceil(room.machines / room.perRow) - 1;
    if (lastRow > 99) return `${field}.machines: ${room.machines} machines, ${room.perRow} a row from row ${room.firstRow}, go on to row ${lastRow} (rows have two digits): fewer machines, or more a row`;
    if (room.network !== undefined) {
      if (!config.networks?.length) return `${field}.network: the lab has one network (the zone): leave network out`;
      if (!config.networks.some((n) => n.name === room.network)) return `${field}.network: unknown network '${room.network}' (networks: ${config.networks.map((n) => n.name).join(', ')})`;
    }
    const unknown = room.dependsOn.find((d) => !owners.has(d));
    if (unknown) return `${field}.dependsOn: unknown machine '${unknown}' (machines: ${[...owners.keys()].join(', ')})`;
    const problem = disklessProblem(config, room, field);
    if (problem) return problem;
    for (const name of roomMachineNames(room)) {
      const owner = owners.get(name);
      if (owner) return `${field}: its machine ${name} is named by ${owner} already`;
      owners.set(name, field);
    }
  }
  return undefined;
}

/** The config with each room's machines after the others: diskless machines like any other from here on. */
function withRooms(config: LabConfig): LabConfig {
  const made = config.rooms.flatMap((room) =>
    roomMachineNames(room).map((name) =>
      machineSchema.parse({
        name,
        kind: 'diskless',
        root: room.root,
        tmpfs: room.tmpfs,
        volatile: room.volatile,
        groups: room.groups,
        dependsOn: room.dependsOn,
        interfaces: room.network ? [{ network: room.network }] : undefined,
      }),
    ),
  );
  return { ...config, machines: [...config.machines, ...made] };
}

function semanticProblem(config: LabConfig): string | undefined {
  const names = config.machines.map((m) => m.name);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate) return `machines: the name '${duplicate}' is used twice`;

  if (config.networks?.length) {
    const problem = commonMachineProblem(config) ?? topologyProblem(config, config.network.mode === 'sandbox' ? parseSubnet(config.network.wanSubnet) : undefined);
    if (problem) return problem;
    return otherProblem(config);
  }
  // The one-network case: what is particular to the zone first, then what every topology must satisfy.
  const zoneProblem = zoneCaseProblem(config);
  if (zoneProblem) return zoneProblem;
  return topologyProblem(config) ?? otherProblem(config);
}

function zoneCaseProblem(config: LabConfig): string | undefined {
  const zone = parseSubnet(config.zone.subnet);
  if (!isHostIn(config.zone.hostAddress, zone)) {
    return `zone.hostAddress: ${config.zone.hostAddress} is not a host address of ${config.zone.subnet}`;
  }
  if (config.network.mode === 'sandbox' && overlaps(zone, parseSubnet(config.network.wanSubnet))) {
    return `network.wanSubnet: ${config.network.wanSubnet} overlaps zone.subnet ${config.zone.subnet}`;
  }
  const common = commonMachineProblem(config);
  if (common) return common;
  const owners = new Map<string, string>([[config.zone.hostAddress, 'zone.hostAddress']]);
  for (const [i, machine] of config.machines.entries()) {
    const field = `machines.${i}`;
    if (machine.interfaces?.length) return `${field}.interfaces: a machine has interfaces on the lab's networks: declare them in networks (the zone alone is the one-network case)`;
    if (machine.address === 'dhcp') continue;
    if (!isHostIn(machine.address, zone)) return `${field}.address: ${machine.address} is not a host address of ${config.zone.subnet}`;
    const owner = owners.get(machine.address);
    if (owner) return `${field}.address: ${machine.address} is already used by ${owner}`;
    owners.set(machine.address, `machine '${machine.name}'`);
  }
  const dns = config.zone.dnsMachine;
  if (dns !== null) {
    const machine = config.machines.find((m) => m.name === dns);
    if (machine?.address === 'dhcp') return `zone.dnsMachine: '${dns}' serves DHCP, so it needs a static address`;
  } else if (config.machines.some((m) => m.address === 'dhcp')) {
    return `zone.dnsMachine: machines use DHCP but no machine serves it`;
  }
  return undefined;
}

/** Names, dependencies, stages, binds: the same with one network or several. */
function commonMachineProblem(config: LabConfig): string | undefined {
  const names = config.machines.map((m) => m.name);
  for (const [i, machine] of config.machines.entries()) {
    const field = `machines.${i}`;
    for (const dep of machine.dependsOn) {
      if (dep === machine.name) return `${field}.dependsOn: '${machine.name}' depends on itself`;
      if (!names.includes(dep)) return `${field}.dependsOn: unknown machine '${dep}' (machines: ${names.join(', ')})`;
      if (machine.kind !== 'vm' && config.machines.find((m) => m.name === dep)!.kind === 'vm') return `${field}.dependsOn: a container cannot depend on the vm '${dep}' (vms boot after every container)`;
    }
    const stageDuplicate = machine.stages.find((s, j) => machine.stages.indexOf(s) !== j);
    if (stageDuplicate) return `${field}.stages: the stage '${stageDuplicate}' is listed twice`;
    if (machine.stages.includes('system')) return `${field}.stages: 'system' is the built-in first stage of every machine`;
    const vmProblem = machine.kind === 'vm' ? vmMachineProblem(config, machine, field) : machine.vm ? `${field}.vm: only for a machine of kind vm` : undefined;
    if (vmProblem) return vmProblem;
    const disklessOnly = (['root', 'tmpfs', 'volatile'] as const).find((key) => machine[key] !== undefined);
    const diskless = isDiskless(machine) ? disklessMachineProblem(config, machine, field) : disklessOnly ? `${field}.${disklessOnly}: only for a machine of kind diskless` : undefined;
    if (diskless) return diskless;
    for (const [j, bind] of machine.binds.entries()) {
      const problem = bindTargetProblem(bind.target);
      if (problem) return `${field}.binds.${j}.target: ${problem}`;
    }
    const targets = machine.binds.map((b) => b.target);
    const twice = targets.find((t, j) => targets.indexOf(t) !== j);
    if (twice) return `${field}.binds: '${twice}' is bound twice`;
  }
  const dns = config.zone.dnsMachine;
  if (dns !== null && !names.includes(dns)) return `zone.dnsMachine: unknown machine '${dns}' (machines: ${names.join(', ')})`;
  return undefined;
}

/** A vm has no stages nor binds, takes its addresses by DHCP, and boots from the network or an existing disk. */
function vmMachineProblem(config: LabConfig, machine: MachineConfig, field: string): string | undefined {
  if (machine.stages.length) return `${field}.stages: a vm has no stages (it boots from the network or its disk; its DHCP server's stages prepare what it boots)`;
  if (machine.binds.length) return `${field}.binds: a vm has no binds`;
  if (machine.aliases.length) return `${field}.aliases: a vm has no aliases`;
  const interfaces = machine.interfaces?.length ? machine.interfaces : [{ address: machine.address }];
  const fixed = interfaces.findIndex((i) => i.address !== 'dhcp');
  if (fixed >= 0) return `${machine.interfaces?.length ? `${field}.interfaces.${fixed}` : field}.address: a vm takes its addresses by DHCP (lab cannot set them inside it)`;
  if (config.zone.dnsMachine === machine.name) return `zone.dnsMachine: '${machine.name}' is a vm; DNS and DHCP come from a container`;
  if (config.networks?.some((n) => n.router === machine.name)) return `${field}: a vm cannot route a network`;
  const vm = machine.vm ?? { boot: 'network' as const, disk: undefined };
  if (vm.boot === 'disk' && !vm.disk) return `${field}.vm.disk: required when vm.boot is disk`;
  if (vm.boot === 'network' && vm.disk) return `${field}.vm.disk: only used when vm.boot is disk`;
  return undefined;
}

/** A diskless machine has no root of its own: no stages, no binds (its root is read-only and shared). */
function disklessMachineProblem(config: LabConfig, machine: MachineConfig, field: string): string | undefined {
  const of = machine.root ? `${machine.root.machine}'s ${machine.root.path}` : 'another machine\'s directory';
  if (machine.stages.length) return `${field}.stages: a diskless machine has no stages: it boots ${of}, which ${machine.root?.machine ?? 'that machine'}'s stages build`;
  if (machine.binds.length) return `${field}.binds: a diskless machine has no binds: it boots ${of}, read-only and shared`;
  return disklessProblem(config, machine, field);
}

/** What a pool needs at the least: the base image, and each machine's root and snapshots (copy-on-write). */
const POOL_BASE_MIB = 512;
const POOL_PER_MACHINE_MIB = 32;

function mebibytes(size: string): number {
  return Number(size.slice(0, -1)) * (size.endsWith('G') ? 1024 : 1);
}

/** Host mode, the pool, the image and dependency cycles. */
function otherProblem(config: LabConfig): string | undefined {
  // Diskless machines and vms have no root in the pool.
  const rooted = config.machines.filter(hasStages).length;
  const poolNeed = POOL_BASE_MIB + POOL_PER_MACHINE_MIB * rooted;
  if (config.storage.kind === 'btrfs' && mebibytes(config.storage.poolSize) < poolNeed) {
    return `storage.poolSize: ${config.storage.poolSize} is too small for ${rooted} machines: they need at least ${poolNeed}M (${POOL_BASE_MIB}M for the base image, ${POOL_PER_MACHINE_MIB}M per machine with a root of its own)`;
  }
  if (config.network.mode === 'sandbox' && config.network.internet) {
    return 'network.internet: only for host mode (sandbox mode has its own simulated internet)';
  }
  if (config.runtime === 'machinectl' && config.machines.some(isDiskless)) {
    return "runtime machinectl: diskless machines need runtime nspawn (lab boots another machine's directory read-only, with the machine's own identity bound over it)";
  }
  if (config.runtime === 'machinectl' && config.machines.some((m) => (m.interfaces?.length ?? 0) > 1)) {
    return 'runtime machinectl: machines with several interfaces need runtime nspawn (machinectl\'s .nspawn files join one bridge)';
  }
  const controller = controllerProblem(config);
  if (controller) return controller;
  const published = publishProblem(config, topologyOf(config));
  if (published) return published;
  const { image } = config;
  if (image.source === 'tarball' && !image.tarball) return 'image.tarball: required when image.source is tarball';
  if (image.source !== 'tarball' && image.tarball) return `image.tarball: only used when image.source is tarball (it is ${image.source})`;
  if (image.source === 'pacstrap' && image.distribution !== 'arch') return `image.distribution: pacstrap builds arch, not ${image.distribution}`;
  if (image.source === 'debootstrap' && image.distribution === 'arch') return 'image.distribution: debootstrap cannot build arch (use image.source pacstrap or tarball)';
  try {
    topologicalOrder(config.machines.map((m) => ({ name: m.name, dependsOn: machineDependencies(config, m) })));
  } catch (error) {
    return `${(error as Error).message}${config.zone.dnsMachine ? ` (machines using DHCP also wait for ${config.zone.dnsMachine})` : ''}`;
  }
  return undefined;
}

/** Stage names lab adds itself: `system` first on every machine, `ssh` when the lab has controller stages. */
export const BUILTIN_STAGES = ['system', 'ssh'] as const;

/** Controller stages and inventory groups: each stage a playbook or a command, names that mean one thing. */
function controllerProblem(config: LabConfig): string | undefined {
  const machines = config.machines.map((m) => m.name);
  const stages = new Set([...BUILTIN_STAGES, ...config.machines.flatMap((m) => m.stages)]);
  for (const [i, machine] of config.machines.entries()) {
    const clash = machine.groups.find((g) => machines.includes(g));
    if (clash) return `machines.${i}.groups: '${clash}' is the name of a machine (Ansible would not know which is meant)`;
    const twice = machine.groups.find((g, j) => machine.groups.indexOf(g) !== j);
    if (twice) return `machines.${i}.groups: '${twice}' is listed twice`;
  }
  if (config.controller.length > 0 && config.machines.some((m) => m.stages.includes('ssh'))) {
    const m = config.machines.findIndex((x) => x.stages.includes('ssh'));
    return `machines.${m}.stages: 'ssh' is the built-in stage that lets the controller in, in a lab with controller stages`;
  }
  const unreachable = config.machines.filter((m) => !hasSsh(m));
  for (const [i, stage] of config.controller.entries()) {
    const field = `controller.${i}`;
    if (config.controller.findIndex((s) => s.name === stage.name) !== i) return `${field}.name: the controller stage '${stage.name}' is declared twice`;
    if (machines.includes(stage.name)) return `${field}.name: '${stage.name}' is the name of a machine`;
    if (stages.has(stage.name)) return `${field}.name: '${stage.name}' is the name of a machine's stage (lab restore ${stage.name} would mean both)`;
    if (Boolean(stage.playbook) === Boolean(stage.run)) return `${field}: give either playbook or run`;
    if (stage.run) {
      for (const key of ['tags', 'limit', 'extraVars'] as const) if (stage[key] !== undefined) return `${field}.${key}: only for a playbook stage (this one runs a command)`;
      if (stage.inventory.length > 0) return `${field}.inventory: only for a playbook stage (a command finds lab's inventory in $LAB_INVENTORY)`;
    }
    if (stage.limit) {
      const named = unreachable.find((v) => limitTokens(stage.limit!).some((t) => t === v.name || v.groups.includes(t)));
      if (named) return `${field}.limit: names the ${named.kind === 'vm' ? 'vm' : 'diskless machine'} '${named.name}', which Ansible cannot reach (lab has no SSH into a ${named.kind === 'vm' ? 'vm' : 'diskless machine'})`;
    }
  }
  return undefined;
}
