/**
 * Benchmark of controller stages on examples/sadm-ansible (npm run bench), in one run, on a copy of
 * the example so that a role can be edited:
 * - `lab up --no-cache`: every machine built (the base image and packages from the host's caches),
 *   then the four plays, once;
 * - `lab up` with everything cached, machines stopped (median of 3);
 * - `lab restore gw-play` from the lab after the last play (median of 3; an untimed `lab up`
 *   between them brings the lab back to its last play, from the snapshots);
 * - after an edit of a role only rhfs's play uses, `lab up` (one play re-run), against `lab up
 *   --from gw-play` (every play), alternated, median of 3 each.
 * Results: reports/bench-controller.{json,md}.
 */
import { appendFileSync, cpSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../lib/paths.js';
import { benchRun, median, wallMs, writeBenchReport } from './report.js';

const work = mkdtempSync('/var/tmp/lab-bench-');
cpSync(path.join(packageRoot, 'examples', 'sadm-ansible'), work, { recursive: true });
const lab = path.join(packageRoot, 'bin', 'lab.js');
const args = ['--config', path.join(work, 'lab.config.yaml'), '--name', `bca${process.pid.toString(36)}`.slice(0, 12)];
const labArgv = (more: string[]) => [process.execPath, lab, ...args, ...more];
const cli = (more: string[]) => benchRun(labArgv(more));
const timed = async (more: string[]) => Math.round(await wallMs(() => cli(more)));
const plays = async (more: string[]) => {
  const report = JSON.parse((await cli([...more, '--json'])).stdout) as { controller: { name: string; action: string }[] };
  return report.controller.filter((s) => s.action === 'build').map((s) => s.name);
};

const results: Record<string, unknown> = {};
try {
  const cold = await timed(['up', '--no-cache']);
  const cached: number[] = [];
  for (let i = 0; i < 3; i++) {
    await cli(['down']);
    cached.push(await timed(['up']));
  }
  const restores: number[] = [];
  for (let i = 0; i < 3; i++) {
    restores.push(await timed(['restore', 'gw-play']));
    await cli(['up']);
  }
  const onePlay: number[] = [];
  const everyPlay: number[] = [];
  for (let i = 0; i < 3; i++) {
    appendFileSync(path.join(work, 'ansible', 'roles', 'nfs', 'templates', 'ganesha.conf'), `# edit ${i}\n`);
    const started = Date.now();
    const ran = await plays(['up']);
    onePlay.push(Date.now() - started);
    if (ran.join() !== 'rhfs-play') throw new Error(`an edit of the nfs role ran ${ran.join(', ')}`);
    const fullStarted = Date.now();
    const all = await plays(['up', '--from', 'gw-play']);
    everyPlay.push(Date.now() - fullStarted);
    if (all.length !== 4) throw new Error(`lab up --from gw-play ran ${all.join(', ')}`);
  }
  Object.assign(results, {
    upNoCacheMs: cold,
    upCachedStoppedMs: { samples: cached, median: median(cached) },
    restoreGwPlayMs: { samples: restores, median: median(restores) },
    upAfterRoleEditMs: { samples: onePlay, median: median(onePlay) },
    upEveryPlayMs: { samples: everyPlay, median: median(everyPlay) },
  });
} finally {
  await benchRun(labArgv(['destroy']), { allowFailure: true });
  rmSync(work, { recursive: true, force: true });
}
type Samples = { median: number; samples: number[] };
const r = results as { upNoCacheMs: number; upCachedStoppedMs: Samples; restoreGwPlayMs: Samples; upAfterRoleEditMs: Samples; upEveryPlayMs: Samples };
const row = (what: string, s: Samples) => `| ${what} (median of ${s.samples.length}: ${s.samples.join(', ')}) | ${s.median} ms |`;
const markdown = [
  '| measure (examples/sadm-ansible: 4 machines, 3 playbooks and a command) | figure |',
  '|---|---|',
  `| lab up --no-cache: the machines built (base image and packages from the host's caches), then every play | ${r.upNoCacheMs} ms |`,
  row('lab up, everything cached, machines stopped', r.upCachedStoppedMs),
  row('lab restore gw-play (the whole lab back to just after the gw play)', r.restoreGwPlayMs),
  row("lab up after an edit of a role only rhfs's play uses (that play re-run)", r.upAfterRoleEditMs),
  row('lab up --from gw-play (every play re-run: what SADM runs today after any edit)', r.upEveryPlayMs),
].join('\n');
writeBenchReport('controller', { ...results }, markdown);
