import { describe, expect, it } from 'vitest';
import { bisectChain, bisectSearch } from '../../lib/engine/bisect.js';

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
