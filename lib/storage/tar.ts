import { mkdirSync, renameSync } from 'node:fs';
import path from 'node:path';
import { run } from '../exec.js';

const TAR_TIMEOUT_MS = 20 * 60_000;

/** Writes a root filesystem tarball (as `machinectl import-tar` takes); visible under its final name only once complete. */
export async function exportTarball(root: string, tarball: string): Promise<void> {
  mkdirSync(path.dirname(tarball), { recursive: true });
  const partial = `${tarball}.partial`;
  await run(['tar', '-cf', partial, '--numeric-owner', '--xattrs', '--one-file-system', '-C', root, '.'], { timeout: TAR_TIMEOUT_MS });
  renameSync(partial, tarball);
}

/** Unpacks such a tarball into `root`, an existing directory, owners and extended attributes as they were. */
export async function importTarball(tarball: string, root: string): Promise<void> {
  await run(['tar', '-xpf', tarball, '--numeric-owner', '--xattrs', '-C', root], { timeout: TAR_TIMEOUT_MS });
}
