/**
 * Benchmark of the debugging loop (npm run bench), on the default lab in one run:
 * - `lab checkpoint save` of the 3 running machines, CLI start to saved (median of 7);
 * - `lab restore <checkpoint>` of the 3 machines, CLI start to all running (target <= 1000 ms),
 *   alternated with its baseline `lab restore system` (a stage restore of the same 3 machines);
 * - `lab bisect proxy web` and `lab bisect proxy` against their baseline, restoring every point
 *   and running the scenario at each (the same engine calls, one per point), alternated, median of 3.
 * Results: reports/bench-debugging.{json,md}.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bisectChain } from '../lib/engine/bisect.js';
import { openLab } from '../lib/engine/lab.js';
import { restoreStages } from '../lib/engine/restore.js';
import { listScenarios, runScenarioFiles, selectScenarios } from '../lib/engine/test.js';
import { packageRoot } from '../lib/paths.js';
import { benchRun, median, wallMs, writeBenchReport } from './report.js';

const lab = path.join(packageRoot, 'bin', 'lab.js');
const name = `bdbg${process.pid.toString(36)}`.slice(0, 12);
const work = mkdtempSync('/var/tmp/lab-bench-');
const config = path.join(work, 'lab.config.json');
writeFileSync(config, JSON.stringify({ name }));
const labArgv = (...args: string[]) => [process.execPath, lab, '--config', config, ...args];
const cli = (...args: string[]) => benchRun(labArgv(...args));

const round = (ms: number) => Math.round(ms);

/** What bisect replaces: every point restored and the scenario run there, then the lab's last stages back. */
async function everyPoint(machine?: string): Promise<number> {
  const opened = await openLab({ file: config });
  const steps = bisectChain(
    opened.loaded.machines.map((m) => ({ name: m.name, stages: m.stages.map((s) => s.name) })),
    machine,
  );
  const scenariosDir = path.join(packageRoot, 'scenarios');
  const [file] = selectScenarios(listScenarios(scenariosDir), ['proxy']);
  return wallMs(async () => {
    for (const step of steps) {
      await restoreStages(opened, step.stages);
      await runScenarioFiles(opened, [file!], scenariosDir, { renderer: 'silent', group: 'bisect' });
    }
    await cli('up');
  });
}

const results: Record<string, unknown> = {};
try {
  await cli('up');
  const save: number[] = [];
  for (let i = 0; i < 7; i++) {
    save.push(await wallMs(() => cli('checkpoint', 'save', `bench-${i}`)));
    if (i > 0) await cli('checkpoint', 'delete', `bench-${i}`);
  }
  const checkpointRestore: number[] = [];
  const stageRestore: number[] = [];
  for (let i = 0; i < 7; i++) {
    checkpointRestore.push(await wallMs(() => cli('restore', 'bench-0')));
    stageRestore.push(await wallMs(() => cli('restore', 'system')));
  }
  await cli('up');
  const bisectMachine: number[] = [];
  const linearMachine: number[] = [];
  const bisectLab: number[] = [];
  const linearLab: number[] = [];
  let runs: Record<string, number> = {};
  for (let i = 0; i < 3; i++) {
    const machineReport = JSON.parse((await cli('bisect', 'proxy', 'web', '--json')).stdout) as { durationMs: number; runs: number; steps: unknown[] };
    bisectMachine.push(machineReport.durationMs);
    linearMachine.push(await everyPoint('web'));
    const labReport = JSON.parse((await cli('bisect', 'proxy', '--json')).stdout) as { durationMs: number; runs: number; steps: unknown[] };
    bisectLab.push(labReport.durationMs);
    linearLab.push(await everyPoint());
    runs = { machineRuns: machineReport.runs, machinePoints: machineReport.steps.length, labRuns: labReport.runs, labPoints: labReport.steps.length };
  }
  Object.assign(results, {
    checkpointSave: { samplesMs: save.map(round), medianMs: round(median(save)) },
    checkpointRestore: { samplesMs: checkpointRestore.map(round), medianMs: round(median(checkpointRestore)), targetMs: 1000 },
    stageRestoreSystem: { samplesMs: stageRestore.map(round), medianMs: round(median(stageRestore)) },
    bisect: {
      ...runs,
      machineMs: round(median(bisectMachine)),
      machineEveryPointMs: round(median(linearMachine)),
      labMs: round(median(bisectLab)),
      labEveryPointMs: round(median(linearLab)),
    },
  });
} finally {
  await benchRun(labArgv('destroy'), { allowFailure: true });
  rmSync(work, { recursive: true, force: true });
}

const r = results as {
  checkpointSave: { medianMs: number };
  checkpointRestore: { medianMs: number };
  stageRestoreSystem: { medianMs: number };
  bisect: { machineRuns: number; machinePoints: number; labRuns: number; labPoints: number; machineMs: number; machineEveryPointMs: number; labMs: number; labEveryPointMs: number };
};
const markdown = [
  '| measure | figure | baseline | target |',
  '|---|---|---|---|',
  `| lab checkpoint save, 3 running machines (CLI start to saved, median of 7) | ${r.checkpointSave.medianMs} ms | | |`,
  `| lab restore <checkpoint>, 3 machines (CLI start to all running, median of 7) | ${r.checkpointRestore.medianMs} ms | lab restore system: ${r.stageRestoreSystem.medianMs} ms | <= 1000 ms |`,
  `| lab bisect proxy web (${r.bisect.machineRuns} runs of ${r.bisect.machinePoints} points, lab put back; median of 3) | ${r.bisect.machineMs} ms | every point, then lab up: ${r.bisect.machineEveryPointMs} ms | |`,
  `| lab bisect proxy (${r.bisect.labRuns} runs of ${r.bisect.labPoints} points, lab put back; median of 3) | ${r.bisect.labMs} ms | every point, then lab up: ${r.bisect.labEveryPointMs} ms | |`,
].join('\n');
writeBenchReport('debugging', { ...results }, markdown);
