import { existsSync } from 'node:fs';
import path from 'node:path';
import { LabError, UsageError } from '../errors.js';
import { exportTarball, imagePaths } from '../image/base.js';
import { parseStageRef } from '../plan/plan.js';
import { listSnapshots } from './snapshots.js';
import type { Lab } from './lab.js';
import { planFor } from './up.js';

/**
 * `lab image export <file> [--from <machine>@<stage>]`: a root filesystem tarball of the base
 * image, or of a stage snapshot, for `image.source: tarball` elsewhere or `machinectl import-tar`.
 */
export async function exportImage(lab: Lab, file: string, from?: string): Promise<{ file: string; source: string }> {
  let source: string;
  if (from) {
    const ref = parseStageRef(from, lab.loaded.machines);
    if (!ref.machine) throw new UsageError(`--from: name the machine too (<machine>@${ref.stage})`);
    const stage = planFor(lab).machines.find((m) => m.name === ref.machine)!.stages.find((s) => s.name === ref.stage)!;
    const snapshot = lab.dirs.snapshot(ref.machine, stage.name, stage.key);
    const newest = listSnapshots(lab, ref.machine, new Set()).filter((s) => s.stage === ref.stage).at(-1);
    source = existsSync(snapshot) ? snapshot : newest ? lab.dirs.snapshot(ref.machine, newest.stage, newest.key) : '';
    if (!source) throw new LabError(`no snapshot of ${from} yet`, 1, `build it with: lab up ${ref.machine}`);
  } else {
    await lab.storage.open();
    source = imagePaths(lab.config, lab.storage, lab.image).poolImage;
    if (!existsSync(source)) throw new LabError('the base image is not built yet', 1, 'build it with: lab up');
  }
  const target = path.resolve(file);
  await exportTarball(source, target);
  return { file: target, source };
}
