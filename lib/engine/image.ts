import { existsSync } from 'node:fs';
import path from 'node:path';
import { LabError, UsageError } from '../errors.js';
import { exportTarball, imagePaths } from '../image/base.js';
import { parseStageRef } from '../plan/plan.js';
import { stageSnapshot } from './snapshots.js';
import type { Lab } from './lab.js';

/**
 * `lab image export <file> [--from <machine>@<stage>]`: a root filesystem tarball of the base
 * image, or of a stage snapshot, for `image.source: tarball` elsewhere or `machinectl import-tar`.
 */
export async function exportImage(lab: Lab, file: string, from?: string): Promise<{ file: string; source: string }> {
  const ref = from ? parseStageRef(from, lab.loaded.machines) : undefined;
  if (ref && !ref.machine) throw new UsageError(`--from: name the machine too (<machine>@${ref.stage})`);
  await lab.storage.open(); // a loopback pool is not mounted after a reboot
  let source: string;
  if (ref?.machine) {
    source = lab.dirs.snapshot(ref.machine, ref.stage, stageSnapshot(lab, ref.machine, ref.stage).key);
  } else {
    source = imagePaths(lab.config.cacheDir, lab.storage, lab.image).poolImage;
    if (!existsSync(source)) throw new LabError('the base image is not built yet', 1, 'build it with: lab up');
  }
  const target = path.resolve(file);
  await exportTarball(source, target);
  return { file: target, source };
}
