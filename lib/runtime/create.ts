import type { HostProfile } from '../host/profile.js';
import type { LabDirs, LabNames } from '../lab.js';
import type { Network } from '../network/network.js';
import { MachinectlRuntime } from './machinectl.js';
import { NspawnRuntime } from './nspawn.js';
import type { Runtime } from './runtime.js';

export function createRuntime(profile: HostProfile, names: LabNames, dirs: LabDirs, network: Network, machines: readonly string[]): Runtime {
  if (profile.runtime === 'machinectl') return new MachinectlRuntime({ bridge: names.bridge, nspawnName: names.nspawnName, machines });
  return new NspawnRuntime({
    netnsPrefix: network.netnsPrefix,
    machinesDir: dirs.machinesDir,
    labName: names.labName,
    bridge: names.bridge,
    nspawnName: names.nspawnName,
    consoleLog: dirs.consoleLog,
  });
}
