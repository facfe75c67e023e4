import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, type LoadOptions } from '../config/load.js';
import type { LabConfig } from '../config/schema.js';
import { type BaseImage, describeBaseImage } from '../image/sources.js';
import { type HostProfile, hostProfile } from '../host/profile.js';
import { type LabDirs, labDirs, type LabNames, labNames } from '../lab.js';
import { createNetwork, type Network } from '../network/network.js';
import { MachinectlRuntime } from '../runtime/machinectl.js';
import { NspawnRuntime } from '../runtime/nspawn.js';
import type { Runtime } from '../runtime/runtime.js';
import { type LoadedLab, loadLab } from '../stages/load.js';
import { BtrfsStorage, isOnBtrfs } from '../storage/btrfs.js';
import { CopyStorage } from '../storage/copy.js';
import type { Storage } from '../storage/storage.js';

/** Everything about one lab, resolved and validated; opening it changes nothing on the host. */
export interface Lab {
  config: LabConfig;
  configFile?: string;
  names: LabNames;
  dirs: LabDirs;
  loaded: LoadedLab;
  image: BaseImage;
  storage: Storage;
  network: Network;
  profile: HostProfile;
  runtime: Runtime;
  /** Shared between labs: packages downloaded for stages. */
  aptArchives: string;
}

export async function openLab(options: LoadOptions): Promise<Lab> {
  const { config, file } = await loadConfig(options);
  const loaded = await loadLab(config);
  const image = describeBaseImage(config);
  const names = labNames(config);
  const dirs = labDirs(config);
  const storage = chooseStorage(config, dirs);
  const profile = hostProfile(config);
  const network = createNetwork(config, names, dirs, profile);
  const runtime: Runtime =
    profile.runtime === 'machinectl'
      ? new MachinectlRuntime({ bridge: names.bridge, nspawnName: names.nspawnName })
      : new NspawnRuntime({ netnsPrefix: network.netnsPrefix, bridge: names.bridge, nspawnName: names.nspawnName, consoleLog: dirs.consoleLog });
  const aptArchives = path.join(config.cacheDir, 'apt', `${config.image.distribution}-${config.image.suite}`);
  return { config, configFile: file, names, dirs, loaded, image, storage, network, profile, runtime, aptArchives };
}

function chooseStorage(config: LabConfig, dirs: LabDirs): Storage {
  if (config.storage.kind === 'copy') return new CopyStorage(dirs.pool, 'storage.kind is copy');
  // An existing loopback image means this lab already has its pool there.
  if (!existsSync(dirs.poolImage) && isOnBtrfs(dirs.state)) return new BtrfsStorage(dirs.pool, undefined);
  return new BtrfsStorage(dirs.pool, { file: dirs.poolImage, size: config.storage.poolSize });
}

export function ensureDirs(lab: Lab): void {
  mkdirSync(lab.dirs.logs, { recursive: true });
  mkdirSync(path.join(lab.aptArchives, 'partial'), { recursive: true });
}
