import { existsSync, mkdirSync, renameSync } from 'node:fs';
import path from 'node:path';
import { run } from '../exec.js';
import type { Tool } from '../host/prereq.js';
import { poolSpace, type Storage } from './storage.js';
import { exportTarball, importTarball } from './tar.js';

const COPY_TIMEOUT_MS = 30 * 60_000;

/** The no-btrfs fallback: snapshots are copies, reflinked when the filesystem can. */
export class CopyStorage implements Storage {
  readonly kind = 'copy' as const;
  constructor(readonly root: string, private readonly reason: string) {}

  async open(): Promise<void> {
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
  }

  async create(target: string): Promise<void> {
    mkdirSync(target, { recursive: true });
  }

  /** Copies cannot be made read-only; `readonly` is honoured by convention (nothing writes to a snapshot). */
  async snapshot(source: string, target: string, _options?: { readonly: boolean }): Promise<void> {
    mkdirSync(path.dirname(target), { recursive: true });
    const partial = `${target}.partial`;
    await this.remove(partial);
    await run(['cp', '-a', '--reflink=auto', '--', source, partial], { timeout: COPY_TIMEOUT_MS });
    renameSync(partial, target);
  }

  async seal(source: string, target: string): Promise<void> {
    renameSync(source, target);
  }

  async remove(target: string): Promise<void> {
    if (!existsSync(target)) return;
    await run(['rm', '-rf', '--one-file-system', '--', target], { timeout: COPY_TIMEOUT_MS });
  }

  space(): { sizeBytes: number; freeBytes: number } | undefined {
    return poolSpace(this.root);
  }

  /** A plain copy holds all its space alone; with reflinks it shares some, which du cannot see. */
  async exclusiveBytes(targets: readonly string[]): Promise<(number | undefined)[]> {
    return Promise.all(targets.map(async (target) => Number((await run(['du', '-sb', '--', target], { timeout: COPY_TIMEOUT_MS })).stdout.split('\t')[0])));
  }

  /** A copy has no parent to be incremental against: each is a whole tarball. */
  async exportSnapshot(snapshot: string, file: string): Promise<void> {
    await exportTarball(snapshot, file);
  }

  async identity(): Promise<undefined> {
    return undefined;
  }

  async heldIdentities(): Promise<Set<string>> {
    return new Set();
  }

  async importSnapshot(file: string, target: string): Promise<void> {
    mkdirSync(path.dirname(target), { recursive: true });
    const partial = `${target}.partial`;
    await this.remove(partial);
    mkdirSync(partial);
    await importTarball(file, partial);
    renameSync(partial, target);
  }

  tools(): Tool[] {
    return [
      { command: 'cp', debianPackage: 'coreutils', why: 'copies roots (reflinks where the filesystem can)' },
      { command: 'tar', debianPackage: 'tar', why: 'lab cache push and pull: snapshots as tarballs' },
    ];
  }

  async leftovers(): Promise<string[]> {
    return existsSync(this.root) ? [`pool ${this.root}`] : [];
  }

  async destroy(): Promise<void> {
    await this.remove(this.root);
  }

  describe(): string {
    return `copy (${this.reason}): snapshots are full copies, restores take seconds`;
  }
}
