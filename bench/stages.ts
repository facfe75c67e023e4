/**
 * Benchmark of online stages (npm run bench): the same shell stage (write a file with a command),
 * offline in the stopped root against online in the booted machine (boot, run, clean stop,
 * snapshot), rebuilt alone with `lab up --from box@work`, 5 runs each, medians side by side.
 * Results: reports/bench-stages.{json,md}.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../lib/paths.js';
import { benchRun, median, writeBenchReport } from './report.js';

const lab = path.join(packageRoot, 'bin', 'lab.js');
const work = mkdtempSync('/var/tmp/lab-bench-');
const labArgv = (config: string, ...args: string[]) => [process.execPath, lab, '--config', config, ...args];

interface UpJson {
  machines: { stages: { name: string; durationMs?: number }[] }[];
}

function labFor(mode: 'offline' | 'online'): string {
  const dir = path.join(work, mode);
  mkdirSync(path.join(dir, 'stages', 'box'), { recursive: true });
  const header = mode === 'online' ? ['# lab: online'] : [];
  writeFileSync(path.join(dir, 'stages', 'box', 'work.sh'), ['#!/bin/sh', ...header, 'set -e', 'date > /etc/built-at', ''].join('\n'));
  writeFileSync(path.join(dir, 'lab.config.yaml'), `name: bst${mode.slice(0, 3)}\nzone: { dnsMachine: null }\nmachines:\n  - { name: box, address: 10.224.0.5, stages: [work] }\n`);
  return path.join(dir, 'lab.config.yaml');
}

const rows: { mode: string; stageMs: number; wallMs: number }[] = [];
const configs = { offline: labFor('offline'), online: labFor('online') };
try {
  for (const config of Object.values(configs)) await benchRun(labArgv(config, 'up'));
  for (const [mode, config] of Object.entries(configs)) {
    const stage: number[] = [];
    const wall: number[] = [];
    for (let run = 0; run < 5; run++) {
      const started = performance.now();
      const up = JSON.parse((await benchRun(labArgv(config, 'up', '--from', 'box@work', '--json'))).stdout) as UpJson;
      wall.push(performance.now() - started);
      stage.push(up.machines[0]!.stages.find((s) => s.name === 'work')!.durationMs!);
    }
    rows.push({ mode, stageMs: Math.round(median(stage)), wallMs: Math.round(median(wall)) });
  }
} finally {
  for (const config of Object.values(configs)) await benchRun(labArgv(config, 'destroy'), { allowFailure: true });
  rmSync(work, { recursive: true, force: true });
}
const [offline, online] = rows;
const markdown = [
  '| stage | stage, median of 5 (ms) | lab up --from, median of 5 (ms) |',
  '|---|---|---|',
  ...rows.map((r) => `| ${r.mode} | ${r.stageMs} | ${r.wallMs} |`),
  `| online overhead | ${online!.stageMs - offline!.stageMs} | ${online!.wallMs - offline!.wallMs} |`,
].join('\n');
writeBenchReport('stages', { rows }, markdown);
