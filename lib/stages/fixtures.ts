import { readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { isWithin, realOrSelf } from '../config/binds.js';
import { UsageError } from '../errors.js';
import { sha, treeEntries } from './content.js';

/** One file of a fixture: its name as the stage sees it (under $LAB_FIXTURES), and the real file it is read from. */
export interface FixtureFile {
  name: string;
  file: string;
}

/**
 * The files of a fixture, a file or a directory's whole tree, each resolved through its symlinks
 * and inside `fixturesDir`: a fixture's name is never a way to read or write elsewhere on the host.
 * Refused (exit 2, after `where`): an absolute name, a `..`, a path or a link that leads out, a link
 * to a directory inside a tree (the tree is copied as files), anything but files and directories.
 */
export function fixtureFiles(fixturesDir: string, name: string, where: string): FixtureFile[] {
  const refuse = (why: string) => new UsageError(`${where}: fixture '${name}' ${why}`);
  if (name === '' || path.isAbsolute(name)) throw refuse(`is not a path relative to the fixtures directory ${fixturesDir}`);
  if (name.split('/').includes('..')) throw refuse(`has a '..': fixtures are named inside the fixtures directory ${fixturesDir}`);
  const root = realOrSelf(fixturesDir);
  const inside = (file: string, shown: string): string => {
    let real: string;
    try {
      real = realpathSync(file);
    } catch {
      throw refuse(`not found in ${fixturesDir}${shown === name ? '' : ` (${shown} is a broken link)`}`);
    }
    if (!isWithin(real, root)) throw refuse(`leads out of the fixtures directory ${fixturesDir}${shown === name ? '' : ` (${shown})`}, to ${real}`);
    return real;
  };
  const top = inside(path.join(fixturesDir, name), name);
  if (!statSync(top).isDirectory()) return [{ name, file: top }];
  const files: FixtureFile[] = [];
  for (const { relative, full, entry } of treeEntries(top)) {
    const shown = path.join(name, relative);
    if (entry.isDirectory()) continue;
    if (entry.isFile()) {
      files.push({ name: shown, file: full });
      continue;
    }
    if (!entry.isSymbolicLink()) throw refuse(`holds ${shown}, which is neither a file nor a directory`);
    const real = inside(full, shown);
    if (statSync(real).isDirectory()) throw refuse(`holds ${shown}, a link to a directory: link its files, or put the directory itself there`);
    files.push({ name: shown, file: real });
  }
  return files;
}

/** What a fixture adds to its stage's key: a file's content, or every file's name and content in a tree. */
export function fixtureHash(files: readonly FixtureFile[], name: string): string {
  if (files.length === 1 && files[0]!.name === name) return sha(readFileSync(files[0]!.file));
  return sha(files.map((f) => `${f.name}\0${sha(readFileSync(f.file))}`).join('\0'));
}
