import { readdirSync, readFileSync } from 'node:fs';
import { refOf } from '../state/process.js';
import type { ProcessRef } from '../state/state.js';

/**
 * Processes whose argv matches, found in one pass over /proc. Drivers match on the lab's own
 * paths (roots inside its pool, its server's ready file), never on a program name alone.
 */
export interface FoundProcess {
  process: ProcessRef;
  argv: string[];
}

export function findProcesses(match: (argv: readonly string[]) => boolean): FoundProcess[] {
  const found: FoundProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // exited meanwhile
    }
    if (!match(argv)) continue;
    const ref = refOf(Number(entry));
    if (ref) found.push({ process: ref, argv });
  }
  return found;
}
