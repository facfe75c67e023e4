import { existsSync } from 'node:fs';
import type { LabConfig } from '../config/schema.js';
import type { LabDirs } from '../layout.js';
import { BtrfsStorage, isOnBtrfs } from './btrfs.js';
import { CopyStorage } from './copy.js';
import type { Storage } from './storage.js';

export function createStorage(config: LabConfig, dirs: LabDirs): Storage {
  if (config.storage.kind === 'copy') return new CopyStorage(dirs.pool, 'storage.kind is copy');
  // An existing loopback image means this lab already has its pool there.
  if (!existsSync(dirs.poolImage) && isOnBtrfs(dirs.state)) return new BtrfsStorage(dirs.pool, undefined);
  return new BtrfsStorage(dirs.pool, { file: dirs.poolImage, size: config.storage.poolSize });
}
