import { describe, expect, it } from 'vitest';
import { titleOf } from '../../lib/cli/progress.js';

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
