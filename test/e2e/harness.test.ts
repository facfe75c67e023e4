import { execa } from 'execa';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunReport } from '../../lib/report/write.js';
import { lab, repoRoot, uniqueName } from './helpers.js';

const failingLab = path.join(repoRoot, 'test', 'failing-lab');
const dir = mkdtempSync(path.join(tmpdir(), 'lab-harness-'));
const config = path.join(dir, 'lab.config.yaml');
const reports = path.join(dir, 'reports');

function filesUnder(root: string): string[] {
  return readdirSync(root).flatMap((entry) => {
    const file = path.join(root, entry);
    return statSync(file).isDirectory() ? filesUnder(file) : [file];
  });
}

describe('lab test on scenarios that must fail', () => {
  let run: { exitCode: number; stdout: string; stderr: string };
  let report: RunReport;
  let runDir: string;
  const scenario = (name: string) => report.scenarios.find((s) => s.name === name)!;

  beforeAll(async () => {
    writeFileSync(
      config,
      [
        `name: ${uniqueName('harn')}`,
        `stagesDir: ${path.join(failingLab, 'stages')}`,
        `fixturesDir: ${path.join(failingLab, 'fixtures')}`,
        'zone: { dnsMachine: null }',
        'machines:',
        '  - { name: solo, address: 10.224.0.9, stages: [doomed] }',
        '',
      ].join('\n'),
    );
    run = await lab(['--config', config, 'test', '--scenarios', path.join(failingLab, 'scenarios'), '--reports', reports]);
    runDir = path.join(reports, readdirSync(reports).find((e) => e !== 'latest')!);
    report = JSON.parse(readFileSync(path.join(runDir, 'results.json'), 'utf8')) as RunReport;
  });

  afterAll(async () => {
    await lab(['--config', config, 'destroy']);
  });

  it('exits 1 and counts the failures', () => {
    expect(run.exitCode, run.stderr).toBe(1);
    expect(run.stdout).toContain('lab test: 2 passed, 4 failed, 0 skipped');
    expect(report).toMatchObject({ outcome: 'failed', passed: 2, failed: 4 });
  });

  it('fails a unit that failed at once, with its journal', () => {
    const test = scenario('unit').tests[0];
    expect(test.outcome).toBe('failed');
    expect(test.durationMs).toBeLessThan(30_000); // not the 60 s the test allowed: it failed fast
    expect(test.errors[0].message).toContain('solo: unit doomed.service is failed');
    expect(test.errors[0].message).toContain('doomed-service-says-goodbye');
    expect(test.journals.solo).toContain('doomed');
  });

  it('fails a curl to a wrong name with curl\'s exit code and message', () => {
    const message = scenario('curl').tests[0].errors[0].message;
    expect(message).toContain('solo: curl http://nosuch.prolo/ failed (exit code 6)');
    expect(message).toContain('Could not resolve host');
  });

  it('makes each TAP point a test, the not ok one failing with its diagnostics', () => {
    const tests = scenario('tap').tests;
    expect(tests.map((t) => [t.name, t.outcome])).toEqual([
      ['solo: 1 the marker is present', 'passed'],
      ['solo: 2 the doomed service runs', 'failed'],
    ]);
    expect(tests[1].errors[0].message).toContain('not ok 2 - the doomed service runs (checks/check_solo.sh)');
    expect(tests[1].errors[0].message).toContain('"state": "failed"');
  });

  it('keeps secrets out of every report file, and keeps the rest of the output', () => {
    const message = scenario('secret').tests[0].errors[0].message;
    expect(message).toContain('exit code 4');
    for (const file of filesUnder(runDir)) {
      const text = readFileSync(file, 'utf8');
      expect(text, file).not.toContain('hunter2');
      expect(text, file).not.toContain('MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw');
    }
    expect(readFileSync(path.join(runDir, 'results.json'), 'utf8')).toContain('password=[REDACTED]');
  });

  it('saves the failed units and journal of each machine', () => {
    expect(readFileSync(path.join(runDir, 'machines', 'solo', 'failed-units.txt'), 'utf8')).toContain('doomed.service');
    expect(readFileSync(path.join(runDir, 'machines', 'solo', 'journal.txt'), 'utf8').length).toBeGreaterThan(100);
    expect(readFileSync(path.join(reports, 'latest', 'results.json'), 'utf8')).toBe(readFileSync(path.join(runDir, 'results.json'), 'utf8'));
  });

  it('writes TAP and a JUnit file that parses, with the same counts', () => {
    const junit = new XMLParser({ ignoreAttributes: false }).parse(readFileSync(path.join(runDir, 'junit.xml'), 'utf8'));
    expect(Number(junit.testsuites['@_failures'])).toBe(4);
    expect(Number(junit.testsuites['@_tests'])).toBe(6);
    const tap = readFileSync(path.join(runDir, 'report.tap'), 'utf8');
    expect(tap.match(/^not ok /gm)).toHaveLength(4);
    expect(tap).toMatch(/^1\.\.6$/m);
  });

  it('prints nothing but the report with --json, and runs only the scenarios named', async () => {
    const json = await lab(['--config', config, 'test', 'curl', '--json', '--scenarios', path.join(failingLab, 'scenarios'), '--reports', reports]);
    expect(json.exitCode).toBe(1);
    const only = JSON.parse(json.stdout) as RunReport & { reportDir: string };
    expect(only.scenarios.map((s) => s.name)).toEqual(['curl']);
    expect(only.failed).toBe(1);
    expect(only.reportDir.startsWith(reports)).toBe(true);
  });

  it('renders an HTML report in headless Chromium that shows the failing scenarios', async () => {
    const html = path.join(runDir, 'report.html');
    const chromium = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', `--user-data-dir=${mkdtempSync(path.join(tmpdir(), 'chromium-'))}`];
    const dom = await execa('chromium', [...chromium, '--dump-dom', `file://${html}`], { timeout: 60_000 });
    expect(dom.stdout).toContain('<section class="scenario failed" id="scenario-unit">');
    expect(dom.stdout).toContain('solo: unit doomed.service is failed');
    expect(dom.stdout).toContain('<h2>Topology</h2>');
    expect(dom.stdout).toMatch(/<svg[^>]*aria-label="lab topology"[\s\S]*>solo<\/text>/);
    const screenshot = path.join(dir, 'report.png');
    await execa('chromium', [...chromium, `--screenshot=${screenshot}`, '--window-size=1200,1600', `file://${html}`], { timeout: 60_000 });
    expect(statSync(screenshot).size).toBeGreaterThan(10_000);
  });
});
