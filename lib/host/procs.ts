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

/** Whether the process's environment holds `entry` (NAME=value) exactly. */
function hasEnvironment(pid: string, entry: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(entry);
  } catch {
    return false;
  }
}

/** The pids of the processes (this one aside) whose environment holds `entry` (NAME=value) exactly. */
export function processesWithEnvironment(entry: string): number[] {
  return readdirSync('/proc')
    .filter((pid) => /^\d+$/.test(pid) && Number(pid) !== process.pid && hasEnvironment(pid, entry))
    .map(Number);
}

/**
 * Kills every process whose environment holds `entry`: a command run in a machine and all it
 * started there, also the children that left its process group or were reparented to the
 * machine's init (they inherit the environment). Repeated until none is left, so that a process
 * that forks while being killed is caught too. Returns how many were killed.
 */
export function killByEnvironment(entry: string, rounds = 5): number {
  let killed = 0;
  for (let round = 0; round < rounds; round++) {
    const found = processesWithEnvironment(entry);
    if (found.length === 0) break;
    for (const pid of found) {
      try {
        process.kill(pid, 'SIGKILL');
        killed++;
      } catch {
        // gone meanwhile
      }
    }
  }
  return killed;
}

/**
 * Memory of each machine's processes, by its init (a host pid): the sum of their proportional set
 * sizes, so pages shared between machines (the same binaries) are split among them. A machine's
 * processes are its init's descendants (its init reaps its orphans), walked from there: no scan
 * of every process on the host, which grows with every other lab's machines.
 */
export function memoryOfMachines(inits: readonly number[]): Map<number, number> {
  return new Map(inits.map((init) => [init, descendantsOf(init).reduce((sum, pid) => sum + pssBytes(pid), 0)]));
}

/** `pid` and every process under it, from each of its threads' children. */
export function descendantsOf(pid: number): number[] {
  const found: number[] = [];
  const pending = [pid];
  while (pending.length > 0) {
    const next = pending.pop()!;
    let threads: string[];
    try {
      threads = readdirSync(`/proc/${next}/task`);
    } catch {
      continue; // exited meanwhile
    }
    found.push(next);
    for (const thread of threads) {
      try {
        pending.push(...readFileSync(`/proc/${next}/task/${thread}/children`, 'utf8').split(' ').filter((p) => p.trim()).map(Number));
      } catch {
        // exited meanwhile
      }
    }
  }
  return found;
}

function pssBytes(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0; // exited meanwhile
  }
}

/** The IPv4 addresses (not loopback) of the network namespace `pid` is in, read from the kernel's FIB: no command run. */
export function localAddresses(pid: number): string[] {
  let trie: string;
  try {
    trie = readFileSync(`/proc/${pid}/net/fib_trie`, 'utf8');
  } catch {
    return [];
  }
  const main = trie.split(/^Local:/m)[0]!;
  const found = [...main.matchAll(/\|-- (\d+\.\d+\.\d+\.\d+)\n\s+\/32 host LOCAL/g)].map((m) => m[1]!);
  return [...new Set(found.filter((address) => !address.startsWith('127.')))];
}
