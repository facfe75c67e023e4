import { describe, expect, it } from 'vitest';
import { UsageError } from '../../lib/errors.js';
import { topologicalOrder } from '../../lib/plan/graph.js';
import { type MachineSpec, parseStageRef, planLab, type StageSpec } from '../../lib/plan/plan.js';

const stage = (machine: string, name: string, definitionHash = `${machine}/${name}`): StageSpec => ({ machine, name, packages: [], definitionHash });
const machine = (name: string, stages: string[], dependsOn: string[] = []): MachineSpec => ({
  name,
  dependsOn,
  stages: ['system', ...stages].map((s) => stage(name, s)),
});

const lab = [machine('gw', ['dns']), machine('web-silicon', ['nginx', 'site'], ['gw']), machine('web', ['haproxy', 'proxy'], ['gw', 'web-silicon'])];

/** Plans with the snapshots of a previous full build present. */
function planWithCache(machines: MachineSpec[], cachedFrom: MachineSpec[], options = {}) {
  const previous = planLab({ machines: cachedFrom, baseKey: 'base', hasSnapshot: () => false });
  const keys = new Set(previous.machines.flatMap((m) => m.stages.map((s) => `${m.name}/${s.name}/${s.key}`)));
  return planLab({ machines, baseKey: 'base', hasSnapshot: (m, s, k) => keys.has(`${m}/${s}/${k}`), options });
}

const actions = (plan: ReturnType<typeof planLab>) =>
  Object.fromEntries(plan.machines.map((m) => [m.name, m.stages.map((s) => `${s.name}:${s.action}`).join(' ')]));

describe('machine order', () => {
  it('puts dependencies first', () => {
    expect(topologicalOrder([{ name: 'web', dependsOn: ['web-silicon'] }, { name: 'web-silicon', dependsOn: ['gw'] }, { name: 'gw', dependsOn: [] }])).toEqual([
      'gw',
      'web-silicon',
      'web',
    ]);
  });

  it('spells out a cycle', () => {
    const cycle = () => topologicalOrder([{ name: 'a', dependsOn: ['b'] }, { name: 'b', dependsOn: ['c'] }, { name: 'c', dependsOn: ['a'] }]);
    expect(cycle).toThrow(UsageError);
    expect(cycle).toThrow('machines: dependency cycle a -> b -> c -> a');
  });
});

describe('planning', () => {
  it('builds everything when nothing is cached', () => {
    const plan = planLab({ machines: lab, baseKey: 'base', hasSnapshot: () => false });
    expect(plan.machines.map((m) => m.name)).toEqual(['gw', 'web-silicon', 'web']);
    expect(actions(plan).web).toBe('system:build haproxy:build proxy:build');
  });

  it('reuses every stage of an unchanged lab', () => {
    expect(Object.values(actions(planWithCache(lab, lab))).join(' ')).not.toContain('build');
  });

  it('rebuilds a changed stage and the stages after it, nothing else', () => {
    const changed = lab.map((m) =>
      m.name === 'web-silicon' ? { ...m, stages: m.stages.map((s) => (s.name === 'nginx' ? { ...s, definitionHash: 'edited' } : s)) } : m,
    );
    expect(actions(planWithCache(changed, lab))).toEqual({
      gw: 'system:cached dns:cached',
      'web-silicon': 'system:cached nginx:build site:build',
      web: 'system:cached haproxy:cached proxy:cached',
    });
  });

  it('chains keys: a different base image changes every key', () => {
    const a = planLab({ machines: lab, baseKey: 'one', hasSnapshot: () => false });
    const b = planLab({ machines: lab, baseKey: 'two', hasSnapshot: () => false });
    const keys = (p: typeof a) => p.machines.flatMap((m) => m.stages.map((s) => s.key));
    expect(keys(a).filter((k) => keys(b).includes(k))).toEqual([]);
    expect(new Set(keys(a)).size).toBe(keys(a).length);
  });

  it('honours --no-cache, --from, --until and a subset of machines', () => {
    expect(actions(planWithCache(lab, lab, { noCache: true })).gw).toBe('system:build dns:build');
    const from = actions(planWithCache(lab, lab, { from: { stage: 'haproxy' } }));
    expect(from.web).toBe('system:cached haproxy:build proxy:build');
    expect(from.gw).toBe('system:cached dns:cached');
    const until = planWithCache(lab, lab, { until: { machine: 'web', stage: 'haproxy' } });
    expect(actions(until).web).toBe('system:cached haproxy:cached');
    expect(actions(until)['web-silicon']).toBe('system:cached nginx:cached site:cached');
    const subset = planWithCache(lab, lab, { only: ['web-silicon'] });
    expect(subset.machines.map((m) => m.name)).toEqual(['gw', 'web-silicon']);
    expect(() => planWithCache(lab, lab, { only: ['wbe'] })).toThrow("unknown machine 'wbe'");
  });
});

describe('stage references', () => {
  it('parses <stage> and <machine>@<stage>', () => {
    expect(parseStageRef('proxy', lab)).toEqual({ stage: 'proxy' });
    expect(parseStageRef('web@haproxy', lab)).toEqual({ machine: 'web', stage: 'haproxy' });
  });

  it('names the valid choices and the closest one', () => {
    expect(() => parseStageRef('proxi', lab)).toThrow(/unknown stage 'proxi' \(valid: system, dns, nginx, site, haproxy, proxy; did you mean 'proxy'\?\)/);
    expect(() => parseStageRef('web@dns', lab)).toThrow(/unknown stage of web 'dns' \(valid: system, haproxy, proxy/);
    expect(() => parseStageRef('wbe@proxy', lab)).toThrow(/unknown machine 'wbe'.*did you mean 'web'/);
    expect(() => parseStageRef('a@b@c', lab)).toThrow(UsageError);
  });
});
