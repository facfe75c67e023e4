import { describe, expect, it } from 'vitest';
import { bisectChain, bisectEnds, bisectSearch } from '../../lib/engine/bisect.js';
import type { Checkpoint } from '../../lib/engine/checkpoints.js';

const lab = [
  { name: 'gw', stages: ['system', 'dns'] },
  { name: 'web', stages: ['system', 'haproxy', 'proxy'] },
];

describe('bisectChain', () => {
  it("is a machine's stages when a machine is named", () => {
    expect(bisectChain(lab, 'web').map((s) => [s.label, [...s.stages]])).toEqual([
      ['web@system', [['web', 'system']]],
      ['web@haproxy', [['web', 'haproxy']]],
      ['web@proxy', [['web', 'proxy']]],
    ]);
  });

  it('is the lab built up to each stage otherwise: every machine at its last stage not later', () => {
    expect(bisectChain(lab).map((s) => `${s.label}: ${[...s.stages].map(([m, st]) => `${m}@${st}`).join(' ')}`)).toEqual([
      'system: gw@system web@system',
      'dns: gw@dns web@system',
      'haproxy: gw@dns web@haproxy',
      'proxy: gw@dns web@proxy',
    ]);
  });

  it('ends with the controller stages, every machine at each in turn, after all their own', () => {
    expect(bisectChain(lab, undefined, ['gw-play', 'web-play']).map((s) => `${s.label}: ${[...s.stages].map(([m, st]) => `${m}@${st}`).join(' ')}`).slice(-3)).toEqual([
      'proxy: gw@dns web@proxy',
      'gw-play: gw@gw-play web@gw-play',
      'web-play: gw@web-play web@web-play',
    ]);
    expect(bisectChain(lab, 'gw', ['gw-play']).map((s) => s.label)).toEqual(['gw@system', 'gw@dns', 'gw@gw-play']);
  });
});

describe('bisectSearch', () => {
  const search = async (results: boolean[]) => {
    const asked: number[] = [];
    const found = await bisectSearch(results.length, async (i) => (asked.push(i), results[i]!));
    return { boundary: found.boundary, asked };
  };

  it('finds the first point with the last result, asking both ends then halves', async () => {
    expect(await search([false, false, false, false, false, true, true, true])).toEqual({ boundary: 5, asked: [7, 0, 3, 5, 4] });
    expect(await search([true, true, false])).toEqual({ boundary: 2, asked: [2, 0, 1] });
  });

  it('reports no boundary when both ends agree', async () => {
    expect(await search([true, false, true])).toEqual({ boundary: undefined, asked: [2, 0] });
    expect(await search([true])).toEqual({ boundary: undefined, asked: [0] });
  });

  it('asks about log2 of the points on a long chain', async () => {
    const results = Array.from({ length: 64 }, (_, i) => i >= 41);
    const { boundary, asked } = await search(results);
    expect(boundary).toBe(41);
    expect(asked.length).toBeLessThanOrEqual(8);
  });
});

describe('bisectSearch between --good and --bad', () => {
  it('asks only the points between the ends, both ends first, for a scenario that also fails at the first stage', async () => {
    // Fails at first (not installed yet), passes once installed, fails again from the regression on.
    const results = [false, false, true, true, true, false, false, false];
    const asked: number[] = [];
    const found = await bisectSearch(results.length, async (i) => (asked.push(i), results[i]!), { first: 2, last: 7 });
    expect(found.boundary).toBe(5);
    expect(asked).toEqual([7, 2, 4, 5]);
    // The whole chain finds nothing: both of its ends fail.
    expect((await bisectSearch(results.length, async (i) => results[i]!)).boundary).toBeUndefined();
  });
});

describe('bisectEnds', () => {
  const checkpoints: Record<string, Checkpoint> = {
    built: { name: 'built', createdAt: '', frozen: true, durationMs: 1, machines: [{ name: 'gw', running: true, rootStage: 'dns' }, { name: 'web', running: true, rootStage: 'haproxy' }] },
    odd: { name: 'odd', createdAt: '', frozen: true, durationMs: 1, machines: [{ name: 'gw', running: true, rootStage: 'system' }, { name: 'web', running: true, rootStage: 'proxy' }] },
  };
  const checkpoint = (name: string) => checkpoints[name];
  const whole = bisectChain(lab);
  const web = bisectChain(lab, 'web');

  it('reads stage names, machine@stage and checkpoints, and is the whole chain without them', () => {
    expect(bisectEnds(whole, {}, checkpoint)).toEqual({ first: 0, last: 3 });
    expect(bisectEnds(whole, { good: 'dns', bad: 'web@proxy' }, checkpoint)).toEqual({ first: 1, last: 3 });
    expect(bisectEnds(whole, { good: 'system', bad: 'built' }, checkpoint)).toEqual({ first: 0, last: 2 });
    expect(bisectEnds(web, { good: 'haproxy' }, checkpoint)).toEqual({ first: 1, last: 2 });
    expect(bisectEnds(web, { good: 'web@system', bad: 'built' }, checkpoint)).toEqual({ first: 0, last: 1 });
  });

  it('refuses, exit 2, a point that is not one, a checkpoint at no point, and a good end not before the bad one', () => {
    expect(() => bisectEnds(whole, { good: 'nosuch' }, checkpoint)).toThrow("--good: 'nosuch' is no stage or checkpoint of this bisect (its points: system, dns, haproxy, proxy)");
    expect(() => bisectEnds(web, { bad: 'dns' }, checkpoint)).toThrow("--bad: 'dns' is no stage or checkpoint");
    expect(() => bisectEnds(whole, { bad: 'gw@proxy' }, checkpoint)).toThrow("--bad: 'gw@proxy' is no stage");
    expect(() => bisectEnds(whole, { good: 'odd' }, checkpoint)).toThrow("--good: checkpoint 'odd' is at no point of this bisect (its machines: gw@system web@proxy)");
    expect(() => bisectEnds(whole, { good: 'proxy', bad: 'dns' }, checkpoint)).toThrow('--good proxy must come before --bad dns in the build');
    expect(() => bisectEnds(web, { good: 'proxy', bad: 'proxy' }, checkpoint)).toThrow(expect.objectContaining({ exitCode: 2 }));
  });
});
