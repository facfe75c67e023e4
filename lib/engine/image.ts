import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { InfraError, UsageError } from '../errors.js';
import { BASE_KEY_FILE, currentBase, imagePaths, poolBaseKeys, poolBasePath, poolImagesDir, readBasePointer, writeBasePointer } from '../image/base.js';
import { withPackageCache } from '../image/packages.js';
import { exportTarball } from '../storage/tar.js';
import { parseStageRef, stageKey } from '../plan/plan.js';
import { stageSnapshot } from './snapshots.js';
import type { Lab } from './lab-types.js';
import { withSession } from './session.js';

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
    if (!existsSync(source)) throw new InfraError('the base image is not built yet', 'build it with: lab up');
  }
  const target = path.resolve(file);
  await exportTarball(source, target);
  return { file: target, source };
}

/** A digest of what a root has installed: the package manager's database. */
function installedDigest(root: string, database: string): string {
  const file = path.join(root, database);
  const content = statSync(file).isDirectory() ? readdirSync(file).sort().join('\n') : readFileSync(file);
  return createHash('sha256').update(content).digest('hex');
}

export interface UpgradeReport {
  from: string;
  /** The new base's key, or undefined when nothing needed upgrading. */
  to?: string;
  durationMs: number;
  log: string;
}

/**
 * `lab image upgrade`, seed 000's flow: the read-only base is cloned, the clone upgraded from the
 * image's mirror (through the host's network), made read-only and swapped in as the new base.
 * The old base stays while snapshots built on it remain (restore reaches them); the next lab up
 * rebuilds every stage on the new one. Interrupted, it leaves the old base in place.
 */
export async function upgradeImage(lab: Lab): Promise<UpgradeReport> {
  const started = Date.now();
  if (lab.image.source === 'tarball') {
    throw new UsageError('lab image upgrade: the image comes from a tarball (image.tarball), which lab cannot upgrade in place', 'upgrade the tarball itself (or build one with lab image export after changes), then point image.tarball at it');
  }
  return withSession(lab, 'image upgrade', { action: 'image upgrade', image: false }, async () => {
    const base = currentBase(lab);
    if (!existsSync(base.path)) throw new InfraError('the base image is not built yet', 'build it with: lab up');
    const log = path.join(lab.dirs.logs, 'image-upgrade.log');
    writeFileSync(log, `upgrading base ${base.key}\n`);
    const partial = path.join(poolImagesDir(lab.storage), 'upgrade.partial');
    await lab.storage.remove(partial);
    await lab.storage.snapshot(base.path, partial, { readonly: false });
    try {
      const pm = lab.image.packageManager(partial);
      if (!pm) throw new UsageError('the base image has no package manager lab knows (apt, pacman)');
      const before = installedDigest(partial, pm.database);
      const sources = lab.image.upgradeSources?.();
      if (sources) writeFileSync(path.join(partial, 'etc/apt/sources.list'), sources);
      const target = { root: partial, nspawnName: `${lab.config.name}-image-upgrade`, logFile: log, packageCache: lab.packageCache };
      await withPackageCache(lab.buildSteps, pm, target, [pm.refresh(), pm.upgrade()]);
      const after = installedDigest(partial, pm.database);
      if (after === before) {
        await lab.storage.remove(partial);
        return { from: base.key, durationMs: Date.now() - started, log };
      }
      const key = createHash('sha256').update(`${base.key}\nupgraded\n${after}`).digest('hex').slice(0, 16);
      mkdirSync(path.join(partial, 'etc'), { recursive: true });
      writeFileSync(path.join(partial, BASE_KEY_FILE), `${key}\n`);
      await lab.storage.seal(partial, poolBasePath(lab.storage, key));
      // Last: until the pointer names it, the old base is the base.
      writeBasePointer(lab.storage, { configKey: lab.image.key, key, from: base.key, createdAt: new Date().toISOString() });
      return { from: base.key, to: key, durationMs: Date.now() - started, log };
    } catch (error) {
      await lab.storage.remove(partial);
      throw error;
    }
  });
}

export interface ImageInfo {
  key: string;
  current: boolean;
  createdAt?: string;
  /** Space only it holds, where the storage can tell. */
  exclusiveBytes?: number;
  /** Machines with stage snapshots built on it. */
  usedBy: string[];
}

/** Which base each machine's snapshots were built on: a `system` snapshot's key is made from its base's key. */
function machinesOnBase(lab: Lab, baseKey: string): string[] {
  return lab.loaded.machines
    .filter((m) => m.stages.length > 0)
    .filter((m) => {
      const system = m.stages[0]!;
      const key = stageKey(system, baseKey);
      return existsSync(lab.dirs.snapshot(m.name, system.name, key));
    })
    .map((m) => m.name);
}

/** `lab image list`: every base image in the pool, its key, size, and the machines whose snapshots use it. */
export async function listImages(lab: Lab): Promise<ImageInfo[]> {
  await lab.storage.open();
  const current = currentBase(lab).key;
  const pointer = readBasePointer(lab.storage);
  const keys = poolBaseKeys(lab.storage);
  const sizes = await lab.storage.exclusiveBytes(keys.map((k) => poolBasePath(lab.storage, k)));
  return keys.map((key, index) => ({
    key,
    current: key === current,
    // A snapshot keeps its source's birth time: an upgraded base's own time is in the pointer.
    createdAt: pointer?.key === key ? pointer.createdAt : statSync(poolBasePath(lab.storage, key)).birthtime.toISOString(),
    exclusiveBytes: sizes[index],
    usedBy: machinesOnBase(lab, key),
  }));
}

/** Old bases no snapshot is built on any more: what lab up deletes after pruning snapshots (sizes are not measured: no quota on this path). */
export async function pruneImages(lab: Lab): Promise<string[]> {
  const current = currentBase(lab).key;
  const unused = poolBaseKeys(lab.storage).filter((key) => key !== current && machinesOnBase(lab, key).length === 0);
  for (const key of unused) await lab.storage.remove(poolBasePath(lab.storage, key));
  return unused;
}
