import { existsSync, statfsSync } from 'node:fs';
import type { HostDriver } from '../driver.js';

/**
 * Where machine roots and stage snapshots live. A snapshot is a read-only copy of a root;
 * on btrfs it is a subvolume snapshot (milliseconds), in copy mode a reflinked or plain copy.
 */
export interface Storage extends HostDriver {
  readonly kind: 'btrfs' | 'copy';
  /** Where the pool is mounted or kept: every path below is inside it. */
  readonly root: string;
  /** Makes the pool usable (creates and mounts a loopback image if needed). Idempotent. */
  open(): Promise<void>;
  /** An empty writable root (a subvolume on btrfs). */
  create(path: string): Promise<void>;
  /** A copy of `source` at `target`, read-only or writable; `target` appears only once complete. */
  snapshot(source: string, target: string, options: { readonly: boolean }): Promise<void>;
  /** Makes a finished root read-only and moves it to its final name in one step. */
  seal(source: string, target: string): Promise<void>;
  /** Removes a root or snapshot, including what systemd nested inside it. Missing is fine. */
  remove(path: string): Promise<void>;
  /** The filesystem the pool is on: its size and what is free, in bytes. */
  space(): { sizeBytes: number; freeBytes: number } | undefined;
  /** Space held only by each snapshot, in bytes; undefined where the storage cannot tell. */
  exclusiveBytes(paths: readonly string[]): Promise<(number | undefined)[]>;
  /**
   * Writes a read-only snapshot to `file`, there only once complete (lab cache push): a btrfs send
   * stream, incremental against `parent` when one is given; a tarball on copy storage.
   */
  exportSnapshot(snapshot: string, file: string, parent?: string): Promise<void>;
  /** What an export of `snapshot` carries as its identity, and an incremental one as its parent's; undefined where exports are whole. */
  identity(snapshot: string): Promise<string | undefined>;
  /** The identities of the snapshots on the pool's filesystem: the parents an incremental export can be imported on. */
  heldIdentities(): Promise<Set<string>>;
  /**
   * Imports an export as the read-only snapshot `target`, there only once complete (lab cache
   * pull), through `staging`, a directory in the pool that the caller removes afterwards.
   */
  importSnapshot(file: string, target: string, staging: string): Promise<void>;
}

export function poolSpace(root: string): { sizeBytes: number; freeBytes: number } | undefined {
  if (!existsSync(root)) return undefined;
  const stat = statfsSync(root);
  return { sizeBytes: stat.blocks * stat.bsize, freeBytes: stat.bavail * stat.bsize };
}
