/**
 * lab test --shard i/n (which scenarios each runner takes) and lab report merge (one report of the
 * shards' reports): pure, but for the merge's files in a temporary directory.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { EXIT, LabError } from '../../lib/errors.js';
import type { ScenarioResult, TestResult } from '../../lib/report/collector.js';
import { mergeRuns, readRun, writeMerge } from '../../lib/report/merge.js';
import { assignShards, durationsOf, parseShard } from '../../lib/report/shard.js';
import { countTests, type RunReport, toJUnit, toTap } from '../../lib/report/write.js';

function refusal(body: () => unknown): LabError {
  try {
    body();
  } catch (error) {
    if (error instanceof LabError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('--shard i/n', () => {
  it('reads i of n, and refuses what is not one (exit 2, naming the option)', () => {
    expect(parseShard('2/3')).toEqual({ index: 2, count: 3 });
    expect(parseShard('1/1')).toEqual({ index: 1, count: 1 });
    for (const bad of ['0/2', '3/2', 'a/b', '1/0', '2', '1/2/3', '-1/2', ' 1/2', '1.5/2']) {
      const error = refusal(() => parseShard(bad));
      expect([bad, error.exitCode]).toEqual([bad, EXIT.USAGE]);
      expect(error.message).toMatch(new RegExp(`^--shard ${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: use i/n`));
    }
  });
});

describe('shard assignment', () => {
  const names = ['connectivity', 'dns', 'exclusive/restore', 'nat', 'proxy', 'services', 'tap'];

  it('puts every scenario in exactly one shard, whatever n', () => {
    for (const count of [1, 2, 3, 7, 9]) {
      const shards = assignShards(names, count);
      expect(shards).toHaveLength(count);
      expect(shards.flat().sort()).toEqual([...names].sort());
    }
  });

  it('is deterministic: the same split for the same names and durations, whatever order they come in', () => {
    const durations = new Map([['nat', 900], ['dns', 300], ['tap', 4000]]);
    const split = assignShards(names, 3, durations);
    expect(assignShards([...names].reverse(), 3, durations)).toEqual(split);
    expect(assignShards(names, 3, new Map([...durations].reverse()))).toEqual(split);
  });

  it('without durations, deals the names out in turn', () => {
    expect(assignShards(names, 2)).toEqual([['connectivity', 'exclusive/restore', 'proxy', 'tap'], ['dns', 'nat', 'services']]);
  });

  it('balances by the durations of an earlier run, the longest first; an unknown scenario weighs the mean', () => {
    const quick = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'];
    const durations = new Map([['slow', 100], ...quick.map((name): [string, number] => [name, 10])]);
    const total = (shard: string[]) => shard.reduce((sum, name) => sum + (durations.get(name) ?? 10), 0);
    const names = ['slow', ...quick];
    expect(assignShards(names, 2).map(total)).toEqual([150, 50]); // in turn, by name: the slow one and half the others
    expect(assignShards(names, 2, durations)).toEqual([['slow'], quick]);
    // `new` knows no duration: it weighs the mean (about 18), not nothing; the quick ones then fill its share to 108, and the last goes with the slow one.
    expect(assignShards([...names, 'new'], 2, durations)).toEqual([['j', 'slow'], ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'new']]);
    // Three shards: the slow one alone, the others five and five.
    expect(assignShards(names, 3, durations).map(total)).toEqual([100, 50, 50]);
  });

  it('reads the durations from a report, by scenario', () => {
    expect([...durationsOf(run('x', ['dns', 'nat']))]).toEqual([['dns', 1000], ['nat', 1000]]);
  });
});

const test = (name: string, outcome: TestResult['outcome']): TestResult => ({ name, outcome, startedAt: 1, durationMs: 10, errors: outcome === 'failed' ? [{ message: `${name} failed` }] : [], journals: {} });
const scenario = (name: string, tests: TestResult[], errors: { message: string }[] = []): ScenarioResult => ({
  name,
  file: `/scenarios/${name}.test.ts`,
  outcome: errors.length || tests.some((t) => t.outcome === 'failed') ? 'failed' : 'passed',
  startedAt: 1,
  durationMs: 1000,
  tests,
  errors,
});

function run(id: string, names: string[], extra: Partial<RunReport> = {}): RunReport {
  const scenarios = names.map((name) => scenario(name, [test(`${name} works`, 'passed'), test(`${name} also`, 'passed')]));
  return { id, lab: 'nightly', startedAt: '2025-01-01T02:00:00.000Z', durationMs: 60_000, ...countTests(scenarios, []), outcome: 'passed', scenarios, unhandled: [], timeline: [], machines: [], ...extra };
}

describe('lab report merge', () => {
  it('counts every test once, failures outside tests and unhandled errors included, as JUnit and TAP do', () => {
    const failing = scenario('proxy', [test('routes by SNI', 'failed'), test('redirects', 'skipped')]);
    const broken = scenario('tap', [], [{ message: 'the file did not load' }]);
    const first = run('a', ['connectivity', 'dns'], { shard: '1/2', startedAt: '2025-01-01T02:00:00.000Z', durationMs: 60_000 });
    const second: RunReport = { ...run('b', []), shard: '2/2', startedAt: '2025-01-01T02:00:30.000Z', durationMs: 60_000, scenarios: [failing, broken], unhandled: [{ message: 'a worker died' }], outcome: 'failed' };
    const merged = mergeRuns([{ report: first, dir: '/r/a' }, { report: second, dir: '/r/b' }]);
    expect(merged.scenarios.map((s) => s.name)).toEqual(['connectivity', 'dns', 'proxy', 'tap']);
    expect([merged.passed, merged.failed, merged.skipped, merged.outcome]).toEqual([4, 3, 1, 'failed']); // proxy's test, tap's load error, the unhandled one
    expect(merged.durationMs).toBe(90_000); // side by side: from the first start to the last end
    expect(merged.mergedFrom).toEqual([{ id: 'a', lab: 'nightly', shard: '1/2' }, { id: 'b', lab: 'nightly', shard: '2/2' }]);

    const junit = new XMLParser({ ignoreAttributes: false }).parse(toJUnit(merged));
    expect([junit.testsuites['@_tests'], junit.testsuites['@_failures'], junit.testsuites['@_skipped']]).toEqual(['8', '3', '1']);
    const cases = junit.testsuites.testsuite.flatMap((s: { testcase: unknown }) => [s.testcase].flat());
    expect(cases).toHaveLength(8);
    expect(cases.filter((c: { failure?: unknown }) => c.failure !== undefined)).toHaveLength(3);
    const tap = toTap(merged);
    expect(tap.split('\n').filter((l) => /^(not )?ok /.test(l))).toHaveLength(4 + 3 + 1 - 1); // TAP leaves the unhandled error to the summary
  });

  it('refuses a scenario found in two runs (not the shards of one run), and a directory without a report (exit 2)', () => {
    const twice = refusal(() => mergeRuns([{ report: run('a', ['dns']), dir: '/r/a' }, { report: run('b', ['dns', 'nat']), dir: '/r/b' }]));
    expect([twice.exitCode, twice.message]).toEqual([EXIT.USAGE, 'scenario dns is in two of the runs: /r/a and /r/b']);
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-merge-'));
    const missing = refusal(() => readRun(dir, 'lab report merge'));
    expect([missing.exitCode, missing.message]).toEqual([EXIT.USAGE, expect.stringMatching(/^lab report merge .*: no results\.json there/)]);
    rmSync(dir, { recursive: true });
  });

  it('writes one JUnit, TAP, JSON and HTML report of the shards, from their run or reports directories', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-merge-'));
    const write = (where: string, report: RunReport) => {
      mkdirSync(where, { recursive: true });
      writeFileSync(path.join(where, 'results.json'), JSON.stringify(report));
    };
    write(path.join(dir, 'shard-1', 'run-a'), run('run-a', ['connectivity', 'dns'], { shard: '1/2' }));
    write(path.join(dir, 'shard-2', 'latest'), run('run-b', ['nat'], { shard: '2/2' })); // a reports directory: its latest run
    const { report, dir: out } = writeMerge([path.join(dir, 'shard-1', 'run-a'), path.join(dir, 'shard-2')], { output: path.join(dir, 'merged'), reportsDir: path.join(dir, 'reports') });
    expect(out).toBe(path.join(dir, 'merged'));
    expect(report.passed).toBe(6);
    const junit = new XMLParser({ ignoreAttributes: false }).parse(readFileSync(path.join(out, 'junit.xml'), 'utf8'));
    expect([junit.testsuites['@_tests'], junit.testsuites['@_failures']]).toEqual(['6', '0']);
    expect(junit.testsuites.testsuite.map((s: { '@_name': string; testcase: unknown[] }) => [s['@_name'], s.testcase.length])).toEqual([['connectivity', 2], ['dns', 2], ['nat', 2]]);
    expect(JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8'))).toMatchObject({ passed: 6, failed: 0, outcome: 'passed' });
    expect(readFileSync(path.join(out, 'report.tap'), 'utf8')).toMatch(/\n1\.\.6\n$/);
    expect(readFileSync(path.join(out, 'summary.md'), 'utf8')).toContain('6 passed, 0 failed, 0 skipped');
    expect(readFileSync(path.join(out, 'summary.md'), 'utf8')).toContain('merged from 2 runs: shard 1/2, shard 2/2');
    expect(readFileSync(path.join(out, 'report.html'), 'utf8')).toContain('<strong>6</strong> passed');
    rmSync(dir, { recursive: true });
  });
});
