import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { descendantsOf, memoryOfMachines } from '../../lib/host/procs.js';
import { poll } from '../../lib/wait.js';

describe('a machine\'s processes, from its init down', () => {
  it('finds every process under a pid, grandchildren included, and sums their memory', async () => {
    // A shell with two children, one of which has its own child.
    const tree = spawn('/bin/sh', ['-c', 'sleep 30 & sh -c "sleep 30 & wait" & wait'], { stdio: 'ignore' });
    try {
      const shell = tree.pid!;
      // Until both sleeps run: the tree is whole.
      const found = await poll('the tree to be made', () => {
        const pids = descendantsOf(shell);
        return pids.filter((pid) => /^sleep/.test(cmdline(pid))).length === 2 ? pids : undefined;
      }, { within: 5000, every: 10 });
      expect(found).toHaveLength(4);
      expect(found[0]).toBe(shell);
      expect(found.filter((pid) => /^sleep/.test(cmdline(pid)))).toHaveLength(2);
      expect(descendantsOf(process.pid)).toEqual(expect.arrayContaining(found));
      const memory = memoryOfMachines([shell]).get(shell)!;
      expect(memory).toBeGreaterThan(0);
      expect(memoryOfMachines([process.pid]).get(process.pid)!).toBeGreaterThan(memory);
    } finally {
      tree.kill('SIGKILL');
      await once(tree, 'exit');
    }
  });

  it('is empty for a process that is gone', () => {
    expect(descendantsOf(2 ** 22 + 1)).toEqual([]);
  });
});

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}
