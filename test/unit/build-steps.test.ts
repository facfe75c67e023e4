import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { BuildSteps } from '../../lib/runtime/build-steps.js';
import { isAlive, refOf } from '../../lib/state/process.js';
import { FAST, holdsWithin } from '../../lib/wait.js';

describe('build steps a killed lab command left running', () => {
  it('are found on an image of the lab as on a machine root (lab image upgrade builds there), and ended', async () => {
    const dirs = ['/var/lib/lab/unit-strays/pool/machines', '/var/lib/lab/unit-strays/pool/images'];
    // Stands for a flock wrapper queued with its nspawn argv: only the argv is looked at.
    const step = spawn('sh', ['-c', 'sleep 60', '--pipe', `--directory=${dirs[1]}/upgrade.partial`], { stdio: 'ignore' });
    const ref = refOf(step.pid!)!;
    const runner = new BuildSteps(dirs, 'unit-strays');
    expect(runner.strays().map((s) => s.process.pid)).toEqual([ref.pid]);
    expect(new BuildSteps([dirs[0]!], 'unit-strays').strays()).toEqual([]);
    await runner.destroy();
    expect(await holdsWithin(() => !isAlive(ref), { within: 5000, every: FAST })).toBe(true);
  });
});
