import { HostError } from '../errors.js';
import type { BareLab } from './lab-types.js';

/** Below this, stages fail to write and machines boot degraded: lab up refuses instead. */
export const MIN_FREE_BYTES = 256 * 1024 * 1024;

const mib = (bytes: number) => `${Math.round(bytes / 1024 / 1024)} MiB`;

/** "the pool is full: 590 MiB of 600 MiB used (10 MiB free) at ...", or undefined when it is not. */
export function poolFull(lab: BareLab, minFree = MIN_FREE_BYTES): string | undefined {
  const space = lab.storage.space();
  if (!space || space.freeBytes >= minFree) return undefined;
  return `the pool is full: ${mib(space.sizeBytes - space.freeBytes)} of ${mib(space.sizeBytes)} used (${mib(space.freeBytes)} free) at ${lab.storage.root}`;
}

export const POOL_FULL_HINT =
  'make room: lab destroy and a larger storage.poolSize (the pool image is made at that size), a lower storage.keepSnapshots (lab up prunes older snapshots), or fewer machines';

/** Refuses to build or boot on a pool that cannot take it: exit 3, with the figures and what to do. */
export function assertPoolHasRoom(lab: BareLab): void {
  const full = poolFull(lab);
  if (full) throw new HostError(full, POOL_FULL_HINT);
}
