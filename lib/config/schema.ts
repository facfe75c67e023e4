import { z } from 'zod';

/** Names that end up in interface, netns, nft and directory names: keep them short and plain. */
const labName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,11}$/, 'lowercase letters, digits and dashes, starting with a letter, at most 12 characters');
const machineName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,11}$/, 'lowercase letters, digits and dashes, starting with a letter, at most 12 characters');
/** What Ansible accepts as a group name without transforming it. */
const groupName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'an Ansible group name: letters, digits and _, not starting with a digit (Ansible refuses dashes)')
  .refine((g) => g !== 'all' && g !== 'ungrouped', "'all' and 'ungrouped' are Ansible's own groups");
const stageName = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'lowercase letters, digits and dashes, starting with a letter');
const ipv4 = z.string().regex(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/, 'an IPv4 address like 10.0.0.1')
  .refine((s) => s.split('.').every((o) => Number(o) <= 255), 'each octet must be at most 255');
const cidr = z
  .string()
  .regex(/^(\d{1,3}\.){3}\d{1,3}\/(\d|[12]\d|3[0-2])$/, 'an IPv4 subnet like 10.0.0.0/24')
  .refine((s) => s.split('/')[0]!.split('.').every((o) => Number(o) <= 255), 'each octet must be at most 255');

/** Names that end up in bridge names (vz-<network>): Linux interface names have 15 characters at most. */
const networkName = z.string().regex(/^[a-z][a-z0-9]{0,11}$/, 'lowercase letters and digits, at most 12 characters (the bridge vz-<name> has 15 at most)');

export const networkSchema = z.strictObject({
  name: networkName,
  subnet: cidr,
  /** Masqueraded to the outside through the host (in sandbox mode: the simulated internet). */
  nat: z.boolean().default(false),
  /** The host's address on the network (default for a NAT'ed network: its first address); none for a network a machine routes. */
  hostAddress: ipv4.optional(),
  /** The machine that routes this network (SADM's gw): machines on it get it as their gateway; the host adds no route or forwarding for it. */
  router: machineName.optional(),
});

export const interfaceSchema = z.strictObject({
  network: networkName,
  address: z.union([z.literal('dhcp'), ipv4]).default('dhcp'),
  /** Its name inside the machine; default host0, host1, ... in order. */
  name: z.string().regex(/^[a-z][a-z0-9]{0,14}$/, 'an interface name: lowercase letters and digits, at most 15 characters').optional(),
});

export const bindSchema = z.strictObject({
  /** A host directory in the config file's tree (relative to the config file); symlinks are resolved once, when the config is read. */
  source: z.string().min(1),
  /** Where it appears in the machine: an absolute path, not under /proc, /sys, /dev or /run. */
  target: z.string().regex(/^\/[^\0]*$/, 'an absolute path inside the machine'),
  readonly: z.boolean().default(true),
  /** Dangerous: a source outside the config file's tree (the machine reads, or writes, a host directory lab does not own). */
  allowOutside: z.boolean().default(false),
});

/** A machine of kind vm: a qemu virtual machine on the lab's networks (KVM when the host has it). */
export const vmSchema = z.strictObject({
  memoryMiB: z.number().int().min(32, 'at least 32 MiB').max(65536, 'at most 65536 MiB').default(256),
  cpus: z.number().int().min(1, 'at least 1').max(64, 'at most 64').default(1),
  /** network: PXE from the lab's DHCP server (SADM's contestant machines); disk: from `disk`. */
  boot: z.enum(['network', 'disk']).default('network'),
  /** A disk image (qcow2 or raw; relative to the config file), used copy-on-write: the image is never written. */
  disk: z.string().min(1).optional(),
});

const port = z.number().int().min(1, 'a port from 1 to 65535').max(65535, 'a port from 1 to 65535');

/** A port of the machine published on the host side of the lab (as seed 000's web.nspawn Port=80). */
export const publishSchema = z.strictObject({
  port,
  /** The port on the host side; default: the same. */
  hostPort: port.optional(),
  protocol: z.enum(['tcp', 'udp']).default('tcp'),
});

/** SADM's temporary file systems over the paths a contestant's session writes (its container_setup_pas-r11p11.sh). */
export const SADM_TMPFS = ['/home', '/var/log', '/var/tmp', '/var/spool/mail', '/var/lib/isolate', '/var/lib/lightdm'] as const;

/** Where a diskless machine's root is: a directory of another machine's root (SADM's rhfs exports /export/nfsroot_ro). */
export const disklessRootSchema = z.strictObject({
  machine: machineName,
  /** An absolute path in that machine's root, without '..'. */
  path: z.string().min(1),
});

/** How a diskless machine writes on its read-only root: tmpfs over these paths (default SADM's), or a volatile overlay over all of it. */
const disklessWrites = {
  tmpfs: z.array(z.string().min(1)).optional(),
  volatile: z.literal('overlay').optional(),
};

export const machineSchema = z.strictObject({
  name: machineName,
  /**
   * container (systemd-nspawn, built in stages), vm (qemu: no stages, boots from the network or a
   * disk) or diskless (systemd-nspawn on another machine's directory, read-only: no stages).
   */
  kind: z.enum(['container', 'vm', 'diskless']).default('container'),
  vm: vmSchema.optional(),
  /** A diskless machine's root. */
  root: disklessRootSchema.optional(),
  ...disklessWrites,
  /** A static address in the zone, or 'dhcp' (served by the lab's DHCP machine). With `interfaces`, unused. */
  address: z.union([z.literal('dhcp'), ipv4]).default('dhcp'),
  /** Its network cards, each on a network (default: one, on the first network, at `address`). */
  interfaces: z.array(interfaceSchema).optional(),
  /** Host directories bound into the machine, while stages are applied and while it runs. */
  binds: z.array(bindSchema).default([]),
  /** More names for it in the lab's DNS (SADM's web serves concours and home). */
  aliases: z.array(z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'a DNS label')).default([]),
  dependsOn: z.array(machineName).default([]),
  /** Ports published on the host side: sandbox mode on the lab's uplink address, host mode on the host's addresses. */
  publish: z.array(publishSchema).default([]),
  /** Stage names, in order; each is a module `<stagesDir>/<machine>/<stage>.(js|ts)`. */
  stages: z.array(stageName).default([]),
  /** Its groups in the lab's Ansible inventory (SADM's hosts.yml groups). */
  groups: z.array(groupName).default([]),
});

/**
 * A room of diskless contestant machines, named as SADM names them: r<row>p<place>, two digits
 * each, `perRow` places a row from `firstRow` on (20 machines from row 1: r01p01 ... r02p10).
 */
export const roomSchema = z.strictObject({
  machines: z.number().int().min(1, 'at least 1'),
  perRow: z.number().int().min(1, 'at least 1').max(99, 'at most 99 (places have two digits)').default(10),
  firstRow: z.number().int().min(0).max(99, 'at most 99 (rows have two digits)').default(1),
  /** The network of their one card (default: the lab's first network). */
  network: networkName.optional(),
  root: disklessRootSchema,
  ...disklessWrites,
  groups: z.array(groupName).default([]),
  dependsOn: z.array(machineName).default([]),
});

/**
 * A lab-wide stage run from the controller (the host side: the lab's namespace in sandbox mode)
 * once every machine's own stages are built and the machines are up: an Ansible playbook across
 * the lab's inventory, or a command. Every machine is snapshotted after it.
 */
export const controllerStageSchema = z.strictObject({
  name: stageName,
  /** A playbook (relative to the config file), run with ansible-playbook against the lab's inventory. */
  playbook: z.string().min(1).optional(),
  /** A command instead (argv; a first word with a slash is relative to the config file). */
  run: z.array(z.string().min(1)).min(1).optional(),
  tags: z.array(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'an Ansible tag: letters, digits, _ . -')).optional(),
  /** ansible-playbook --limit. */
  limit: z.string().min(1).optional(),
  extraVars: z.record(z.string(), z.unknown()).optional(),
  /** The team's own inventory files or directories (SADM's inventory/hosts.yml), used beside lab's: part of the key. */
  inventory: z.array(z.string().min(1)).default([]),
  /** Files or directories a `run` command reads (relative to the config file): part of the key. */
  reads: z.array(z.string().min(1)).default([]),
  /** Where it runs (relative to the config file); default: the playbook's directory, or the config's. */
  cwd: z.string().min(1).optional(),
  /** Deadline for the whole stage: then it ends, with everything it started. */
  timeoutSeconds: z.number().int().min(1).max(86400).default(1800),
});

export const labConfigSchema = z.strictObject({
  name: labName.default('lab'),
  /** Everything the lab keeps on the host: pool, snapshots, logs, state. */
  stateDir: z.string().default('/var/lib/lab'),
  /** Caches shared by every lab on the host: base image tarballs, downloaded packages. */
  cacheDir: z.string().default('/var/cache/lab'),
  zone: z
    .strictObject({
      name: z.string().regex(/^[a-z][a-z0-9]{0,11}$/, 'lowercase letters and digits, at most 12 characters').default('prolo'),
      /** The DNS domain of the zone's machines. */
      domain: z.string().regex(/^[a-z0-9.-]+$/).default('prolo'),
      subnet: cidr.default('10.224.0.0/24'),
      /** The address of the bridge `vz-<zone>`: the machines' router to the outside (NAT). */
      hostAddress: ipv4.default('10.224.0.1'),
      /** The machine that serves DNS and DHCP to the zone (it needs a static address); null when there is none. */
      dnsMachine: machineName.nullable().default('gw'),
    })
    .prefault({}),
  /** Several networks (SADM: servers, users, alien); without it, the zone is the lab's one network. */
  networks: z.array(networkSchema).optional(),
  network: z
    .strictObject({
      /** sandbox: bridge, NAT and a simulated internet in namespaces of the lab's own; host: on the host, as SADM does. */
      mode: z.enum(['sandbox', 'host']).default('sandbox'),
      /** The simulated internet of sandbox mode; a documentation range, so it can never mean a real host. */
      wanSubnet: cidr.default('198.51.100.0/24'),
      /**
       * Host mode: a server beyond the host's uplink that answers HTTP with the caller's address,
       * and the address NAT should show it, to check NAT (sandbox mode has its own).
       */
      internet: z.strictObject({ address: ipv4, uplinkAddress: ipv4 }).optional(),
    })
    .prefault({}),
  storage: z
    .strictObject({
      /** btrfs: the state directory when it is btrfs, otherwise a loopback btrfs pool; copy: plain copies. */
      kind: z.enum(['btrfs', 'copy']).default('btrfs'),
      /** Size of the sparse loopback image, when one is needed. */
      poolSize: z.string().regex(/^\d+[MG]$/, 'a size like 20G or 512M').default('20G'),
      /** Snapshots of a stage's earlier definitions kept after `lab up` (newest first); older ones are deleted. */
      keepSnapshots: z.number().int().min(0).default(2),
    })
    .prefault({}),
  /** auto: machinectl on a systemd host with machined, otherwise nspawn processes started by lab. */
  runtime: z.enum(['auto', 'nspawn', 'machinectl']).default('auto'),
  boot: z
    .strictObject({
      /** Machines booting at once; default: 4 per core (at least 4), at most the lab's size. */
      concurrency: z.number().int().min(1).max(512).optional(),
      /** Deadline for one machine to reach running (or degraded), and for its network to come up. */
      timeoutSeconds: z.number().int().min(5).max(3600).default(90),
    })
    .prefault({}),
  image: z
    .strictObject({
      /** debootstrap (Debian, Ubuntu hosts), pacstrap (Arch hosts), tarball (anywhere: a root filesystem tarball). */
      source: z.enum(['debootstrap', 'pacstrap', 'tarball']).default('debootstrap'),
      /** For tarball: a path (relative to the config file) or an http(s) URL. */
      tarball: z.string().min(1).optional(),
      distribution: z.enum(['debian', 'ubuntu', 'arch']).default('debian'),
      suite: z.string().regex(/^[a-z]+$/).default('bookworm'),
      /** Defaults to the mirror that the host's own apt sources name. */
      mirror: z.url().optional(),
      /** Extra packages for the base image every machine starts from. */
      packages: z.array(z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/)).default([]),
    })
    .prefault({}),
  packages: z
    .strictObject({
      /**
       * A package proxy on the host side of the lab, which running machines' apt uses (online stages,
       * Ansible's apt, Puppet's package): it forwards only to the image's mirrors, from the host's network.
       */
      proxy: z.boolean().default(true),
    })
    .prefault({}),
  /** Limits of every machine stage; a stage may set its own timeout (`timeoutSeconds`, `# lab: timeout=30m`). */
  stageLimits: z
    .strictObject({
      /** Deadline of each command a stage runs: its whole script, for a shell, Puppet or Ansible stage. */
      timeoutSeconds: z.number().int().min(1).max(7 * 86400, 'at most 7 days (604800)').default(900),
      /** Where a stage's log stops growing, with a line saying how much it dropped. */
      logMiB: z.number().int().min(1).max(65536).default(64),
    })
    .prefault({}),
  /** Where stage modules and fixture files live; default: the ones shipped with lab. */
  stagesDir: z.string().optional(),
  fixturesDir: z.string().optional(),
  machines: z.array(machineSchema).min(1, 'a lab needs at least one machine'),
  /** Rooms of diskless machines, added to `machines` once validated. */
  rooms: z.array(roomSchema).default([]),
  /** Lab-wide stages run from the controller, in order, after every machine's own stages. */
  controller: z.array(controllerStageSchema).default([]),
});

export type LabConfigInput = z.input<typeof labConfigSchema>;
export type LabConfig = z.output<typeof labConfigSchema>;
export type MachineConfig = z.output<typeof machineSchema>;
export type RoomConfig = z.output<typeof roomSchema>;
export type DisklessRoot = z.output<typeof disklessRootSchema>;
export type ControllerStageConfig = z.output<typeof controllerStageSchema>;

