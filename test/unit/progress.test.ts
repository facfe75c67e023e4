import { describe, expect, it, vi } from 'vitest';
import { failureLine, titleOf, upProgress } from '../../lib/cli/progress.js';
import { stageFailure } from '../../lib/engine/stage-failure.js';
import { AssertionFailure } from '../../lib/errors.js';
import { CommandError } from '../../lib/exec.js';

describe("lab up's progress on screen", () => {
  it('titles the base image task with its source and log, then with where the image came from', () => {
    expect(titleOf({ kind: 'image-start', source: 'debootstrap', log: '/var/lib/lab/lab/logs/image.log' })).toBe('base image (debootstrap; log: /var/lib/lab/lab/logs/image.log)');
    expect(titleOf({ kind: 'image-end', from: 'cache' })).toBe('base image: imported from the cache');
    expect(titleOf({ kind: 'image-end', from: 'pacstrap' })).toBe('base image: built with pacstrap');
    expect(titleOf({ kind: 'image-end', error: new Error('no mirror') })).toBeUndefined(); // the failure is shown instead
    expect(titleOf({ kind: 'image', line: 'I: Base system installed successfully.' })).toBeUndefined(); // output under the title
  });

  it('gives each machine one line saying where it is', () => {
    expect(titleOf({ kind: 'machines-start', machines: ['gw', 'web'] })).toBeUndefined();
    expect(titleOf({ kind: 'machine', machine: 'web', line: 'built haproxy,proxy, waiting for gw' })).toBe('web: built haproxy,proxy, waiting for gw');
    expect(titleOf({ kind: 'machine-end', machine: 'web' })).toBeUndefined();
  });

  it('titles the controller task with its stages, their steps, then what ran', () => {
    expect(titleOf({ kind: 'controller-start', stages: ['site', 'db'] })).toBe('controller: site, db');
    expect(titleOf({ kind: 'controller', line: 'site: snapshotting every machine at rest' })).toBe('controller: site: snapshotting every machine at rest');
    expect(titleOf({ kind: 'controller-end', stages: ['site', 'db'] })).toBe('controller: ran site, db');
    expect(titleOf({ kind: 'controller-end', stages: ['site'], error: new Error('play failed') })).toBeUndefined();
  });
});

describe("a failed machine's line", () => {
  it('names the failure without its command, which the error printed after the run shows once', async () => {
    const error = stageFailure({ machine: 'web', stage: 'site', step: 'run', error: new CommandError({ argv: ['systemd-nspawn', '--quiet', '--directory=/pool/machines/web', '/bin/sh', '/run/lab-stage/stage.sh'], exitCode: 1, stdout: '', stderr: 'nginx: not found\n', durationMs: 1 }, 'exit code 1') });
    expect(failureLine(error)).toBe('stage web@site failed (run): command failed (exit code 1)');
    expect(failureLine(new Error('web not started: gw failed\nmore'))).toBe('web not started: gw failed');
  });

  it('says a failed command from its fields, not from its message: the reason without the argv, which the error keeps', () => {
    const result = { argv: ['nsenter', '--target=1', '--all', '/bin/sh', '-c', 'echo "x: command failed (exit code 9): y"'], exitCode: 3, stdout: '', stderr: '', durationMs: 1 };
    const failed = new CommandError(result, 'exit code 3');
    expect(failureLine(failed)).toBe('command failed (exit code 3)');
    expect(failed.result.argv).toEqual(result.argv);
    expect(failed.message).toContain("'echo \"x: command failed (exit code 9): y\"'"); // printed whole after the run
    const stage = stageFailure({ machine: 'web', stage: 'site', step: 'online run', error: failed });
    expect(failureLine(stage)).toBe('stage web@site failed (online run): command failed (exit code 3)');
    expect(failureLine(stageFailure({ machine: 'web', stage: 'site', step: 'check', error: new AssertionFailure('web: no page\n$ curl') }))).toBe('stage web@site failed (check): web: no page');
  });

  it('shows a failed line on screen without its command', async () => {
    const error = stageFailure({ machine: 'web', stage: 'site', step: 'run', error: new CommandError({ argv: ['systemd-nspawn', '--quiet', '--directory=/pool/machines/web', '/bin/sh', '/run/lab-stage/stage.sh'], exitCode: 1, stdout: '', stderr: 'nginx: not found\n', durationMs: 1 }, 'exit code 1') });
    const written: string[] = [];
    const writes = [process.stdout, process.stderr].map((stream) => vi.spyOn(stream, 'write').mockImplementation((chunk) => (written.push(String(chunk)), true)));
    try {
      const show = (await upProgress('simple'))!;
      show({ kind: 'machines-start', machines: ['web'] });
      show({ kind: 'machine', machine: 'web', line: 'building site (1/1)' });
      show({ kind: 'machine-end', machine: 'web', error });
      await show({ kind: 'machines-end' });
    } finally {
      for (const write of writes) write.mockRestore();
    }
    expect(written.join('')).toContain('stage web@site failed (run)');
    expect(written.join('')).not.toContain('systemd-nspawn');
  });
});
