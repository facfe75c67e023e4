import { existsSync, type FSWatcher, readdirSync, statSync, watch } from 'node:fs';
import path from 'node:path';

/** Directories never watched inside a watched tree: what tools write, not what a team edits. */
const SKIPPED = new Set(['node_modules', '.git', 'reports', '.vite']);

/**
 * Watches trees for changes, one inotify watch per directory, so that what tools write
 * (node_modules, .git, reports) is left out (node's own recursive watch takes every directory).
 * A directory that appears is watched from then on. `onChange` is told the path that changed (a
 * file, or a directory that came or went).
 */
export class TreeWatcher {
  private readonly watchers = new Map<string, FSWatcher>();

  constructor(
    roots: readonly string[],
    private readonly onChange: (file: string) => void,
    /** Directories left out (and what is under them). */
    private readonly skip: (dir: string) => boolean = () => false,
  ) {
    for (const root of roots) this.add(root);
  }

  /** The directories watched now. */
  get directories(): string[] {
    return [...this.watchers.keys()].sort();
  }

  close(): void {
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
  }

  private add(dir: string): void {
    if (this.watchers.has(dir) || this.skip(dir) || !isDirectory(dir)) return;
    let watcher: FSWatcher;
    try {
      watcher = watch(dir, { persistent: true }, (_event, name) => this.changed(dir, name === null ? undefined : String(name)));
    } catch {
      return; // gone meanwhile, or not readable: nothing there to watch
    }
    watcher.on('error', () => this.forget(dir));
    this.watchers.set(dir, watcher);
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory() && !SKIPPED.has(entry.name)) this.add(path.join(dir, entry.name));
    }
  }

  private changed(dir: string, name: string | undefined): void {
    const file = name === undefined ? dir : path.join(dir, name);
    if ((name !== undefined && SKIPPED.has(name)) || this.skip(file)) return;
    if (isDirectory(file)) this.add(file);
    else if (!existsSync(file)) this.forgetUnder(file);
    this.onChange(file);
  }

  private forget(dir: string): void {
    this.watchers.get(dir)?.close();
    this.watchers.delete(dir);
  }

  private forgetUnder(gone: string): void {
    for (const dir of this.watchers.keys()) if (dir === gone || dir.startsWith(`${gone}/`)) this.forget(dir);
  }
}

function isDirectory(file: string): boolean {
  try {
    return statSync(file).isDirectory();
  } catch {
    return false;
  }
}
