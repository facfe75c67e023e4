import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordFrozen, thawAbandoned } from '../../lib/state/frozen.js';

/** A stand-in cgroup: a directory with its cgroup.freeze file, frozen. */
function frozenCgroup(dir: string, name: string): string {
  const cgroup = path.join(dir, name);
  mkdirSync(cgroup);
  writeFileSync(path.join(cgroup, 'cgroup.freeze'), '1');
  return cgroup;
}

describe('machines frozen by a command that was killed', () => {
  it('are thawed by the next command that opens the lab, which says who froze them', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-frozen-'));
    const file = path.join(dir, 'frozen.json');
    const cgroups = [frozenCgroup(dir, 'gw'), frozenCgroup(dir, 'web')];
    writeFileSync(file, JSON.stringify({ by: { pid: 999_999_999, startTime: '1' }, command: 'checkpoint save x', machines: ['gw', 'web'], cgroups: [...cgroups, path.join(dir, 'gone')] }));
    expect(thawAbandoned(file)).toBe("thawed gw, web: 'lab checkpoint save x' (pid 999999999) froze them and ended without thawing them");
    for (const cgroup of cgroups) expect(readFileSync(path.join(cgroup, 'cgroup.freeze'), 'utf8')).toBe('0');
    expect(thawAbandoned(file)).toBeUndefined(); // once
  });

  it('are left alone while the command that froze them runs', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-frozen-'));
    const file = path.join(dir, 'frozen.json');
    const cgroup = frozenCgroup(dir, 'gw');
    recordFrozen(file, 'checkpoint save x', ['gw'], [cgroup]); // by this very process, alive
    expect(thawAbandoned(file)).toBeUndefined();
    expect(readFileSync(path.join(cgroup, 'cgroup.freeze'), 'utf8')).toBe('1');
  });
});
