import type { LabConfig } from '../config/schema.js';
import type { LabDirs, LabNames } from '../lab.js';
import { HostNetwork } from './host.js';
import type { Network } from './network.js';
import { NetworkdNetwork } from './networkd.js';
import { SandboxNetwork } from './sandbox.js';

export function createNetwork(config: LabConfig, names: LabNames, dirs: LabDirs, profile: { networkd: boolean }): Network {
  if (config.network.mode === 'sandbox') return new SandboxNetwork(config, names, dirs);
  return profile.networkd ? new NetworkdNetwork(config, names) : new HostNetwork(config, names);
}
