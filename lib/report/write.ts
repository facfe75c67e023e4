import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { privateDir } from '../paths.js';
import type { ScenarioResult, TestResult } from './collector.js';
import { redact } from './redact.js';

export interface TimelineEntry {
  kind: 'stage' | 'boot' | 'controller' | 'scenario';
  name: string;
  startedAt: number;
  durationMs: number;
  outcome: 'passed' | 'failed' | 'skipped' | 'built' | 'cached';
}

export interface MachineDiagnostics {
  machine: string;
  failedUnits: string;
  journal: string;
}

export interface RunReport {
  id: string;
  lab: string;
  startedAt: string;
  durationMs: number;
  passed: number;
  failed: number;
  skipped: number;
  outcome: 'passed' | 'failed';
  scenarios: ScenarioResult[];
  unhandled: { message: string; stack?: string }[];
  timeline: TimelineEntry[];
  machines: MachineDiagnostics[];
  /** `lab test --shard 2/3`: which share of the scenarios this run had. */
  shard?: string;
  /** `lab report merge`: the runs it was made of. */
  mergedFrom?: { id: string; lab: string; shard?: string }[];
}

export function countTests(scenarios: ScenarioResult[], unhandled: unknown[]): { passed: number; failed: number; skipped: number } {
  const tests = scenarios.flatMap((s) => s.tests);
  // A scenario that failed outside its tests (load error, hook) counts as one failure.
  const outside = scenarios.filter((s) => s.errors.length > 0 && !s.tests.some((t) => t.outcome === 'failed')).length;
  return {
    passed: tests.filter((t) => t.outcome === 'passed').length,
    failed: tests.filter((t) => t.outcome === 'failed').length + outside + unhandled.length,
    skipped: tests.filter((t) => t.outcome === 'skipped').length,
  };
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

export function toTap(report: RunReport): string {
  const lines = ['TAP version 14'];
  let n = 0;
  const yaml = (text: string) => ['  ---', '  message: |', ...text.split('\n').map((l) => `    ${l}`), '  ...'];
  for (const scenario of report.scenarios) {
    for (const error of scenario.errors) lines.push(`not ok ${++n} - ${scenario.name}: ${error.message.split('\n')[0]}`, ...yaml(error.message));
    for (const test of scenario.tests) {
      const title = `${scenario.name} > ${test.name}`;
      if (test.outcome === 'skipped') lines.push(`ok ${++n} - ${title} # SKIP`);
      else if (test.outcome === 'passed') lines.push(`ok ${++n} - ${title}`);
      else lines.push(`not ok ${++n} - ${title}`, ...yaml(test.errors.map((e) => e.message).join('\n')));
    }
  }
  lines.push(`1..${n}`);
  return `${lines.join('\n')}\n`;
}

const escapeXml = (text: string) => text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!).replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '');
const junitSeconds = (ms: number) => (ms / 1000).toFixed(3);

/**
 * JUnit XML of a report, counting as countTests does: a test each, plus a failed case for a
 * scenario that failed outside its tests and for each unhandled error. (A run of lab test has
 * vitest's own; this one is for reports vitest did not make, such as a merge of shards.)
 */
export function toJUnit(report: RunReport): string {
  const failure = (errors: { message: string }[]) => {
    const message = errors.map((e) => e.message).join('\n');
    return `<failure message="${escapeXml(message.split('\n')[0] ?? '')}">${escapeXml(message)}</failure>`;
  };
  const suites = report.scenarios.map((scenario) => {
    const cases = scenario.tests.map((test) => {
      const body = test.outcome === 'failed' ? failure(test.errors) : test.outcome === 'skipped' ? '<skipped/>' : '';
      return `    <testcase classname="${escapeXml(scenario.name)}" name="${escapeXml(test.name)}" time="${junitSeconds(test.durationMs)}">${body}</testcase>`;
    });
    if (scenario.errors.length > 0 && !scenario.tests.some((t) => t.outcome === 'failed')) {
      cases.push(`    <testcase classname="${escapeXml(scenario.name)}" name="(outside its tests)" time="0.000">${failure(scenario.errors)}</testcase>`);
    }
    const counts = countTests([scenario], []);
    return [
      `  <testsuite name="${escapeXml(scenario.name)}" tests="${cases.length}" failures="${counts.failed}" errors="0" skipped="${counts.skipped}" time="${junitSeconds(scenario.durationMs)}">`,
      ...cases,
      '  </testsuite>',
    ].join('\n');
  });
  if (report.unhandled.length > 0) {
    suites.push([
      `  <testsuite name="unhandled errors" tests="${report.unhandled.length}" failures="${report.unhandled.length}" errors="0" skipped="0" time="0.000">`,
      ...report.unhandled.map((error, i) => `    <testcase classname="unhandled errors" name="unhandled error ${i + 1}" time="0.000">${failure([error])}</testcase>`),
      '  </testsuite>',
    ].join('\n'));
  }
  const total = report.passed + report.failed + report.skipped;
  return `<?xml version="1.0" encoding="UTF-8" ?>\n<testsuites name="lab test ${escapeXml(report.id)}" tests="${total}" failures="${report.failed}" errors="0" skipped="${report.skipped}" time="${junitSeconds(report.durationMs)}">\n${suites.join('\n')}\n</testsuites>\n`;
}

/** Where a run came from, for the summary and the page: its shard, or the runs merged into it. */
function origin(report: RunReport): string {
  if (report.mergedFrom?.length) return `merged from ${report.mergedFrom.length} runs: ${report.mergedFrom.map((r) => (r.shard ? `shard ${r.shard}` : r.id)).join(', ')}`;
  return report.shard ? `shard ${report.shard}` : '';
}

export function toMarkdown(report: RunReport): string {
  const rows = report.scenarios.map(
    (s) => `| ${s.outcome === 'failed' ? '❌' : s.outcome === 'passed' ? '✅' : '⏭'} | ${s.name} | ${s.tests.filter((t) => t.outcome === 'passed').length}/${s.tests.length} | ${seconds(s.durationMs)} |`,
  );
  const failures = report.scenarios.flatMap((s) =>
    s.tests.filter((t) => t.outcome === 'failed').map((t) => `- **${s.name} > ${t.name}**\n\n  \`\`\`\n  ${t.errors.map((e) => e.message).join('\n').split('\n').slice(0, 12).join('\n  ')}\n  \`\`\``),
  );
  return [
    `## lab test ${report.id}: ${report.outcome === 'passed' ? 'passed' : 'FAILED'}`,
    '',
    `${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped in ${seconds(report.durationMs)} on lab \`${report.lab}\`${origin(report) ? ` (${origin(report)})` : ''}`,
    '',
    '| | scenario | tests passed | duration |',
    '|---|---|---|---|',
    ...rows,
    ...(failures.length ? ['', '### Failures', '', ...failures] : []),
    '',
  ].join('\n');
}

function timelineHtml(entries: TimelineEntry[]): string {
  const shown = entries.filter((e) => e.startedAt > 0);
  if (shown.length === 0) return '<p>No timeline.</p>';
  const start = Math.min(...shown.map((e) => e.startedAt));
  const end = Math.max(...shown.map((e) => e.startedAt + e.durationMs));
  const span = Math.max(1, end - start);
  const rows = shown.map((e) => {
    const left = ((e.startedAt - start) / span) * 100;
    const width = Math.max(0.4, (e.durationMs / span) * 100);
    return `<div class="row"><span class="label">${escapeHtml(e.kind)}: ${escapeHtml(e.name)}</span><span class="track"><span class="bar ${e.outcome}" style="left:${left.toFixed(2)}%;width:${width.toFixed(2)}%" title="${seconds(e.durationMs)}"></span></span><span class="time">${seconds(e.durationMs)}</span></div>`;
  });
  return `<div class="timeline">${rows.join('\n')}</div><p class="muted">0 to ${seconds(span)}</p>`;
}

function testHtml(test: TestResult): string {
  const mark = test.outcome === 'passed' ? '✔' : test.outcome === 'failed' ? '✖' : '–';
  const details = test.outcome === 'failed'
    ? [
        ...test.errors.map((e) => `<pre class="error">${escapeHtml(e.message)}</pre>`),
        ...Object.entries(test.journals).map(([machine, journal]) => `<details><summary>journal of ${escapeHtml(machine)}</summary><pre>${escapeHtml(journal)}</pre></details>`),
      ].join('\n')
    : '';
  return `<li class="test ${test.outcome}"><span class="mark">${mark}</span> ${escapeHtml(test.name)} <span class="muted">${seconds(test.durationMs)}</span>${details}</li>`;
}

/** The lab's topology, drawn, for the reports (not in results.json: it is the config's, not the run's). */
export interface ReportTopology {
  svg: string;
  mermaid: string;
}

export function toHtml(report: RunReport, topology?: ReportTopology): string {
  const scenarios = report.scenarios.map(
    (s) => `<section class="scenario ${s.outcome}" id="scenario-${escapeHtml(s.name)}">
<h3><span class="badge ${s.outcome}">${s.outcome}</span> ${escapeHtml(s.name)} <span class="muted">${seconds(s.durationMs)}</span></h3>
${s.errors.map((e) => `<pre class="error">${escapeHtml(e.message)}</pre>`).join('\n')}
${s.captures?.length ? `<p>packet captures: ${s.captures.map((c) => `<a href="${escapeHtml(c)}">${escapeHtml(path.basename(c))}</a>`).join(' · ')}</p>` : ''}
<ul>${s.tests.map(testHtml).join('\n')}</ul>
</section>`,
  );
  const machines = report.machines.map(
    (m) => `<details><summary>${escapeHtml(m.machine)}: failed units and journal</summary><h4>failed units</h4><pre>${escapeHtml(m.failedUnits || '(none)')}</pre><h4>journal</h4><pre>${escapeHtml(m.journal)}</pre></details>`,
  );
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lab test ${escapeHtml(report.id)}: ${report.outcome}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
.muted{color:#777;font-size:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:8px;color:#fff;font-size:12px;text-transform:uppercase}
.badge.passed{background:#2a7}.badge.failed{background:#c33}.badge.skipped{background:#999}
.summary{font-size:18px;margin:.5em 0 1em}
section.scenario{border:1px solid #ddd;border-radius:6px;padding:.5em 1em;margin:.8em 0}
section.scenario.failed{border-color:#c33;background:#fff6f6}
li.test{list-style:none;margin:.3em 0}li.test.failed .mark{color:#c33}li.test.passed .mark{color:#2a7}
pre{background:#f4f4f4;padding:.6em;overflow:auto;max-height:30em;white-space:pre-wrap}
pre.error{background:#fde8e8;border-left:3px solid #c33}
.timeline .row{display:flex;align-items:center;gap:.5em;margin:2px 0}
.timeline .label{width:16em;font-size:12px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.timeline .track{position:relative;flex:1;height:12px;background:#f0f0f0}
.timeline .bar{position:absolute;top:0;height:12px;border-radius:2px}
.bar.passed,.bar.built{background:#2a7}.bar.failed{background:#c33}.bar.cached,.bar.skipped{background:#bbb}
.timeline .time{width:6em;font-size:12px;text-align:right}
.topology{overflow:auto;max-width:100%;border:1px solid #ddd;display:inline-block}
</style></head><body>
<h1>lab test <span class="badge ${report.outcome}">${report.outcome}</span></h1>
<p class="summary"><strong>${report.passed}</strong> passed, <strong>${report.failed}</strong> failed, ${report.skipped} skipped in ${seconds(report.durationMs)}</p>
<p class="muted">lab ${escapeHtml(report.lab)} · run ${escapeHtml(report.id)} · started ${escapeHtml(report.startedAt)}${origin(report) ? ` · ${escapeHtml(origin(report))}` : ''}</p>
${report.unhandled.map((e) => `<pre class="error">${escapeHtml(e.message)}</pre>`).join('\n')}
<h2>Scenarios</h2>
${scenarios.join('\n')}
<h2>Timeline</h2>
${timelineHtml(report.timeline)}
${topology ? `<h2>Topology</h2>\n<div class="topology">${topology.svg}</div>` : ''}
${machines.length ? `<h2>Machines at the end of the failing run</h2>\n${machines.join('\n')}` : ''}
</body></html>
`;
}

/** Writes every report of a run into `<reportsDir>/<id>` and points `latest` at it. Returns the run's directory. */
export function writeReports(reportsDir: string, report: RunReport, options: { topology?: ReportTopology; junit?: boolean } = {}): string {
  const dir = writeRunDir(path.join(reportsDir, report.id), report, options);
  const latest = path.join(reportsDir, 'latest');
  rmSync(latest, { force: true });
  symlinkSync(report.id, latest);
  return dir;
}

/**
 * Writes every report of a run into `dir` (with `junit`, the JUnit file too: vitest writes it for a
 * run of lab test); every file passes through `redact` and is its owner's alone.
 */
export function writeRunDir(dir: string, report: RunReport, options: { topology?: ReportTopology; junit?: boolean } = {}): string {
  const topology = options.topology;
  privateDir(dir);
  writeFileSync(path.join(dir, 'results.json'), `${JSON.stringify(report, null, 2)}\n`);
  if (options.junit) writeFileSync(path.join(dir, 'junit.xml'), toJUnit(report));
  writeFileSync(path.join(dir, 'report.tap'), toTap(report));
  writeFileSync(path.join(dir, 'report.html'), toHtml(report, topology));
  if (topology) {
    writeFileSync(path.join(dir, 'topology.svg'), topology.svg);
    writeFileSync(path.join(dir, 'topology.mmd'), topology.mermaid);
  }
  writeFileSync(path.join(dir, 'summary.md'), toMarkdown(report));
  for (const machine of report.machines) {
    const machineDir = path.join(dir, 'machines', machine.machine);
    mkdirSync(machineDir, { recursive: true });
    writeFileSync(path.join(machineDir, 'failed-units.txt'), machine.failedUnits);
    writeFileSync(path.join(machineDir, 'journal.txt'), machine.journal);
  }
  sealTree(dir);
  return dir;
}

/**
 * Every file of a run redacted (but captures) and readable by its owner alone, directories 0700
 * and files 0600: journals, captures and errors hold what the machines said and sent, in clear.
 * Also covers files written by others (vitest's JUnit report, tcpdump's pcaps).
 */
export function sealTree(dir: string): void {
  chmodSync(dir, 0o700);
  for (const entry of readdirSync(dir)) {
    const file = path.join(dir, entry);
    if (statSync(file).isDirectory()) {
      sealTree(file);
      continue;
    }
    chmodSync(file, 0o600);
    if (file.endsWith('.pcap')) continue; // binary: rewriting it as text would break it (a capture holds what went over the wire)
    const text = readFileSync(file, 'utf8');
    const clean = redact(text);
    if (clean !== text) writeFileSync(file, clean);
  }
}
