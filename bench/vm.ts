/**
 * Benchmark of vm machines (npm run bench), on examples/sadm: r00p03 netboots from gw.
 * - from qemu's start (the vm restarted by the engine, as lab up does) to the marker on its
 *   console: lease, iPXE script, kernel, initramfs, registration (median of 3);
 * - its memory (qemu's resident set) once it has registered;
 * - the accelerator used, and why (KVM only where a probe guest keeps time).
 * Results: reports/bench-vm.{json,md}.
 */
import path from 'node:path';
import { openLab } from '../lib/engine/lab.js';
import { startMachine, stopMachine } from '../lib/engine/machines.js';
import { status } from '../lib/engine/status.js';
import { packageRoot } from '../lib/paths.js';
import { readState } from '../lib/state/state.js';
import { waitForConsoleText } from '../lib/vm/console.js';
import { benchRun, median, writeBenchReport } from './report.js';

const lab = path.join(packageRoot, 'bin', 'lab.js');
const name = `bvm${process.pid.toString(36)}`.slice(0, 12);
const config = path.join(packageRoot, 'examples', 'sadm', 'lab.config.yaml');
const labArgv = (...args: string[]) => [process.execPath, lab, '--config', config, '--name', name, ...args];
const cli = (...args: string[]) => benchRun(labArgv(...args));
const MARKER = /LAB-NETBOOT-DONE name=r00p03/;

const results: Record<string, unknown> = {};
try {
  await cli('up');
  const opened = await openLab({ file: config, name });
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) {
    const state = readState(opened.dirs.stateFile);
    await stopMachine(opened, state, 'r00p03', { hard: true });
    const started = performance.now();
    await startMachine(opened, state, 'r00p03', { waitForNetwork: false });
    await waitForConsoleText(opened.dirs.consoleLog('r00p03'), MARKER, 300_000, 'r00p03');
    samples.push(Math.round(performance.now() - started));
  }
  const vm = (await status(opened)).machines.find((m) => m.name === 'r00p03')!;
  results.netboot = { samplesMs: samples, medianMs: median(samples), accelerator: await opened.vms.accelerator(), memoryMiB: Math.round((vm.memoryBytes ?? 0) / 1048576), configuredMiB: 256 };
} finally {
  await benchRun(labArgv('destroy'), { allowFailure: true });
}
const r = results.netboot as { medianMs: number; samplesMs: number[]; accelerator: string; memoryMiB: number; configuredMiB: number };
const markdown = [
  '| measure | figure |',
  '|---|---|',
  `| r00p03: qemu start to the netboot marker on its console (median of 3: ${r.samplesMs.join(', ')} ms) | ${r.medianMs} ms |`,
  `| r00p03: qemu's resident memory after registering (configured ${r.configuredMiB} MiB) | ${r.memoryMiB} MiB |`,
  `| accelerator | ${r.accelerator} |`,
].join('\n');
writeBenchReport('vm', { ...results }, markdown);
