import { publishedPorts, publishRules } from './ports.js';
import type { LabConfig } from '../config/schema.js';
import type { Topology } from '../config/topology.js';
import type { LabDirs, LabNames } from '../layout.js';
import { HostNetwork } from './host.js';
import type { Network } from './network.js';
import { NetworkdNetwork } from './networkd.js';
import { SandboxNetwork } from './sandbox.js';

export function createNetwork(config: LabConfig, topology: Topology, names: LabNames, dirs: LabDirs, profile: { networkd: boolean }): Network {
  if (config.network.mode === 'sandbox') return new SandboxNetwork(config, topology, names, dirs);
  return profile.networkd ? new NetworkdNetwork(topology, names) : new HostNetwork(topology, names, publishRules(publishedPorts(config, topology), 'host'));
}
