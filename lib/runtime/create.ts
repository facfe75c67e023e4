import type { LabConfig } from '../config/schema.js';
import type { Topology } from '../config/topology.js';
import type { HostProfile } from '../host/profile.js';
import type { LabDirs, LabNames } from '../layout.js';
import type { Network } from '../network/network.js';
import { MachinectlRuntime } from './machinectl.js';
import { NspawnRuntime } from './nspawn.js';
import type { Runtime } from './runtime.js';

export function createRuntime(profile: HostProfile, names: LabNames, dirs: LabDirs, network: Network, config: LabConfig, topology: Topology): Runtime {
  const machines = config.machines.map((m) => m.name);
  const binds = (machine: string) => config.machines.find((m) => m.name === machine)!.binds;
  if (profile.runtime === 'machinectl') return new MachinectlRuntime({ bridge: names.bridge, nspawnName: names.nspawnName, machines, binds });
  const bridgeOf = new Map(topology.networks.map((n) => [n.name, n.bridge]));
  return new NspawnRuntime({
    interfaces: (machine) =>
      topology.machines.find((m) => m.name === machine)!.interfaces.map((i) => ({ name: i.name, hostLink: i.hostLink, bridge: bridgeOf.get(i.network)! })),
    binds,
    machines,
    netnsPrefix: network.netnsPrefix,
    machinesDir: dirs.machinesDir,
    labName: names.labName,
    nspawnName: names.nspawnName,
    consoleLog: dirs.consoleLog,
  });
}
