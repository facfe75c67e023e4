import type { Forecast } from '../engine/dry-run.js';
import type { BisectReport } from '../engine/bisect.js';
import type { CacheKeyReport, PullReport, PushReport } from '../engine/cache.js';
import type { Checkpoint } from '../engine/checkpoints.js';
import type { IdempotenceReport } from '../engine/idempotence.js';
import type { ImageInfo } from '../engine/image.js';
import type { DoctorReport } from '../engine/doctor.js';
import type { RestoreReport } from '../engine/restore.js';
import type { SnapshotReport } from '../engine/snapshots.js';
import type { LabStatus } from '../engine/status.js';
import type { UpReport } from '../engine/up.js';

/** Left-aligned columns. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

const seconds = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)}s`);

export function printUp(report: UpReport): string {
  const rows = [['MACHINE', 'BUILT', 'CACHED', 'BOOT', 'FAILED UNITS']];
  for (const m of report.machines) {
    rows.push([
      m.name,
      m.stages.filter((s) => s.action === 'build').map((s) => s.name).join(',') || '-',
      m.stages.filter((s) => s.action === 'cached').map((s) => s.name).join(',') || '-',
      m.booted ? seconds(m.bootMs) : 'already up',
      m.failedUnits.join(',') || '-',
    ]);
  }
  const pruned = report.prunedSnapshots ? `, ${report.prunedSnapshots} old snapshot(s) pruned` : '';
  const limits = [
    ...report.recovered.map((line) => `recovered ${line}`),
    ...report.hostLimits.map((line) => `host: ${line}`),
    ...report.removed.map((name) => `removed ${name}: no longer in the config (stopped, its root removed)`),
  ].map((line) => `${line}\n`).join('');
  return `${limits}${table(rows)}${printController(report)}\nlab up in ${seconds(report.durationMs)} (base image: ${report.baseImage}${pruned})`;
}

/** lab up --dry-run: each machine's stages with what would be done and why, what would boot, what would go. */
export function printForecast(forecast: Forecast): string {
  const lines: string[] = [];
  for (const m of forecast.machines) {
    lines.push(`${m.machine}: ${m.power} (${m.why})`);
    for (const s of m.stages) lines.push(`  ${s.action === 'build' ? 'build ' : 'cached'} ${s.stage}${s.why ? `: ${s.why}` : ''}`);
  }
  for (const s of forecast.controller) lines.push(`controller ${s.stage}: ${s.action === 'build' ? 'runs' : 'cached'}`);
  for (const name of forecast.removed) lines.push(`${name}: removed (no longer in the config: stopped, its root removed)`);
  const built = forecast.machines.reduce((n, m) => n + m.stages.filter((s) => s.action === 'build').length, 0);
  lines.push('', `lab up --dry-run: ${built} stage(s) to build, nothing done`);
  return lines.join('\n');
}

/** One row per controller stage: run or cached, how long, and Ansible's changed count per host. */
function printController(report: UpReport): string {
  if (report.controller.length === 0) return '';
  const rows = [['CONTROLLER STAGE', 'ACTION', 'TIME', 'CHANGED (ANSIBLE RECAP)']];
  for (const s of report.controller) {
    const changed = s.recap.map((r) => `${r.host}=${r.changed}`).join(' ');
    rows.push([s.name, s.action === 'build' ? 'ran' : 'cached', s.action === 'build' ? seconds(s.durationMs) : '-', changed || '-']);
  }
  return `\n\n${table(rows)}`;
}

export function printRestore(report: RestoreReport): string {
  const lines = report.restored.map((r) => {
    const what = report.checkpoint ? `checkpoint ${r.stage}` : `${r.stage}${r.current ? '' : ' (an earlier definition of the stage: it changed since)'}`;
    return `${r.machine}: restored to ${what}, ${r.bootMs === undefined ? 'stopped (as it was then)' : `running in ${seconds(r.bootMs)}`}`;
  });
  if (report.rebooted.length) lines.push(`rebooted (they depend on a restored machine): ${report.rebooted.join(', ')}`);
  // A machine rebooted for a restored one was not left alone; a checkpoint has no stage to be theirs.
  const leftAlone = report.leftAlone.filter((machine) => !report.rebooted.includes(machine));
  if (leftAlone.length) lines.push(`left alone (${report.checkpoint ? 'not in the checkpoint' : 'the stage is not theirs'}): ${leftAlone.join(', ')}`);
  // One line per reason: a room's machines share theirs.
  const why = new Map<string, string[]>();
  for (const { machine, why: reason } of report.leftStopped) why.set(reason, [...(why.get(reason) ?? []), machine]);
  for (const [reason, machines] of why) lines.push(`left stopped (diskless: ${reason}): ${machines.join(', ')}`);
  lines.push(`done in ${seconds(report.durationMs)}`);
  return lines.join('\n');
}

export function bytes(n: number | undefined): string {
  if (n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function printSnapshots(report: SnapshotReport[]): string {
  const rows = [['MACHINE', 'STAGE', 'KEY', 'CREATED', 'CURRENT', 'EXCLUSIVE']];
  for (const machine of report) {
    for (const s of machine.snapshots) rows.push([machine.machine, s.stage, s.key, s.createdAt ?? 'unknown', s.current ? 'yes' : 'old', bytes(s.exclusiveBytes)]);
  }
  if (rows.length === 1) return 'no snapshots yet (lab up builds them)';
  const unknown = report.some((m) => m.snapshots.some((s) => s.exclusiveBytes === undefined));
  return unknown ? `${table(rows)}\nEXCLUSIVE '-': this storage cannot measure it (btrfs quotas are used only in a loopback pool the lab made)` : table(rows);
}

export function printStatus(status: LabStatus): string {
  const rows = [['MACHINE', 'STATE', 'ADDRESS', 'MEMORY', 'ROOT FROM', 'STAGES DONE', 'PENDING', 'SNAPSHOTS']];
  for (const m of status.machines) {
    rows.push([m.name, m.state, m.address, bytes(m.memoryBytes), m.rootStage ?? '-', m.stagesDone.join(',') || '-', m.stagesPending.join(',') || '-', String(m.snapshots.length)]);
  }
  const recovered = status.recovered.map((line) => `recovered ${line}`);
  const interrupted = status.interrupted.map((line) => `left by an interrupted command (lab up repairs it): ${line}`);
  return [`lab ${status.name} (${status.config})`, `network: ${status.network}`, `storage: ${status.storage}`, ...recovered, ...interrupted, '', table(rows)].join('\n');
}

export function printDoctor(report: DoctorReport): string {
  const lines = [`root: ${report.root ? 'yes' : 'NO (lab needs root)'}`, 'tools:'];
  for (const t of report.tools) lines.push(`  ${t.found ? 'ok     ' : 'MISSING'} ${t.command.padEnd(15)} ${t.why}${t.found ? '' : ` (apt-get install ${t.package})`}`);
  for (const problem of report.problems) lines.push(`problem: ${problem}`);
  lines.push(`runtime: ${report.profile.runtime}`, `network: ${report.profile.network}`, `storage: ${report.profile.storage}`, `image:   ${report.profile.image}`, `packages: ${report.profile.packages}`, 'why:');
  for (const reason of report.profile.why) lines.push(`  - ${reason}`);
  lines.push('host limits (lab up raises what is short):');
  for (const l of report.limits) {
    const ok = l.current !== undefined && l.current >= l.need;
    lines.push(`  ${ok ? 'ok     ' : 'LOW    '} ${l.sysctl} = ${l.current ?? '?'}, this lab needs ${l.need}: ${l.why}`);
  }
  lines.push(`on the host, this lab's (lab destroy removes it all): ${report.leftovers.length ? '' : 'nothing'}`);
  for (const item of report.leftovers) lines.push(`  - ${item}`);
  if (report.otherLabs.length) lines.push(`other labs on this host: ${report.otherLabs.join(', ')}`);
  lines.push(report.ready ? 'ready' : 'NOT READY');
  return lines.join('\n');
}

export function printCheckpointSaved(checkpoint: Checkpoint): string {
  const running = checkpoint.machines.filter((m) => m.running).length;
  const how = running === 0 ? 'no machine was running' : checkpoint.frozen ? `${running} running, frozen for one consistent moment` : `${running} running, each taken as it was (this host cannot freeze them)`;
  return `checkpoint ${checkpoint.name}: ${checkpoint.machines.length} machines (${how}) in ${seconds(checkpoint.durationMs)}\nback to it with: lab restore ${checkpoint.name}`;
}

export function printCheckpoints(checkpoints: Checkpoint[]): string {
  if (checkpoints.length === 0) return 'no checkpoints (lab checkpoint save <name> makes one)';
  const rows = [['CHECKPOINT', 'CREATED', 'MACHINES', 'RUNNING THEN', 'ROOTS FROM']];
  for (const c of checkpoints) {
    const from = [...new Set(c.machines.map((m) => m.rootStage ?? '-'))].join(',');
    rows.push([c.name, c.createdAt, String(c.machines.length), c.machines.filter((m) => m.running).map((m) => m.name).join(',') || '-', from]);
  }
  return table(rows);
}

export function printBisect(report: BisectReport): string {
  const rows = [[report.machine ? 'STAGE' : 'LAB BUILT UP TO', 'RESULT', 'RESTORE', 'SCENARIO']];
  for (const step of report.steps) {
    const ms = (value?: number) => (value === undefined ? '-' : seconds(value));
    rows.push([step.label, step.outcome, ms(step.restoreMs), ms(step.scenarioMs)]);
  }
  const b = report.boundary;
  const verdict = b
    ? `${report.scenario}: ${b.before === 'failed' ? 'fails' : 'passes'} up to ${b.until}, ${b.after === 'passed' ? 'passes' : 'fails'} from ${b.from} on${b.after === 'failed' ? ' (a regression)' : ''}`
    : `${report.scenario}: no boundary: it ${report.steps.find((s) => s.outcome !== 'not run')?.outcome} at both ends of the chain`;
  return `${table(rows)}\n${verdict}\n${report.runs} scenario runs for ${report.steps.length} stages in ${seconds(report.durationMs)} (putting the lab back: ${seconds(report.putBackMs)})`;
}

export function printIdempotence(report: IdempotenceReport): string {
  const rows = [['MACHINE', 'STAGE', 'APPLIED AGAIN', 'TIME']];
  const details: string[] = [];
  for (const machine of report.machines) {
    for (const stage of machine.stages) {
      rows.push([machine.machine, stage.stage, stage.failed ? 'FAILED when applied again' : stage.changed ? `changed ${stage.changes.length} path(s)` : 'nothing changed', seconds(stage.durationMs)]);
      if (stage.failed) details.push(`${machine.machine}@${stage.stage}: ${stage.failed.split('\n').slice(0, 12).join('\n  ')}`);
      else if (stage.changed) details.push(`${machine.machine}@${stage.stage}:`, ...stage.changes.slice(0, 20).map((c) => `  ${c}`), ...(stage.changes.length > 20 ? [`  ... and ${stage.changes.length - 20} more (--json lists them all)`] : []));
    }
  }
  const controllerRows = [['CONTROLLER STAGE', 'APPLIED AGAIN (ANSIBLE RECAP)', 'FILES CHANGED (SHOWN, NOT JUDGED)', 'TIME']];
  for (const stage of report.controller) {
    const recap = stage.recap.length ? stage.recap.map((r) => `${r.host} changed=${r.changed}${r.failed ? ` failed=${r.failed}` : ''}`).join(' ') : `exit ${stage.exitCode}`;
    const files = stage.machines.filter((m) => m.changes.length > 0).map((m) => `${m.machine}:${m.changes.length}`).join(' ') || 'none';
    controllerRows.push([stage.stage, `${stage.changed ? 'CHANGED ' : ''}${recap}`, files, seconds(stage.durationMs)]);
  }
  const verdict = report.idempotent ? 'idempotent: applying each stage again changed nothing' : 'NOT idempotent: applying these stages again changed their result';
  return [table(rows), ...(report.controller.length ? ['', table(controllerRows)] : []), ...details, `${verdict} (${seconds(report.durationMs)}; paths that always change are ignored: ${report.ignored.join(' ')})`].join('\n');
}

export function printImages(images: ImageInfo[]): string {
  if (images.length === 0) return 'no base image yet (lab up builds it)';
  const rows = [['IMAGE KEY', 'CURRENT', 'CREATED', 'EXCLUSIVE', 'USED BY (snapshots)']];
  for (const image of images) rows.push([image.key, image.current ? 'yes' : 'old', image.createdAt ?? '-', bytes(image.exclusiveBytes), image.usedBy.join(',') || '-']);
  return table(rows);
}

export const printCacheKey = (report: CacheKeyReport): string => report.key;

export function printPush(report: PushReport): string {
  const rows = [['SNAPSHOT', 'KEY', 'OBJECT', 'SIZE'], ...report.objects.map((o) => [o.name, o.key, o.action === 'kept' ? 'kept (unchanged)' : o.action, bytes(o.bytes)])];
  const count = (action: string) => report.objects.filter((o) => o.action === action).length;
  return `${table(rows)}\npushed to ${report.dir} in ${seconds(report.durationMs)}: ${count('written')} written, ${count('kept')} kept, ${count('not built')} not built`;
}

export function printPull(report: PullReport): string {
  if (!report.found) return `no cache in ${report.dir} (no manifest.json): lab up builds everything`;
  const lines = report.objects.map((o) =>
    o.action === 'imported' ? `imported ${o.name} (${bytes(o.bytes)})`
      : o.action === 'refused' ? `REFUSED ${o.name}: ${o.reason}; not used: lab up builds it`
        : `${o.name}: not in the cache, lab up builds it`,
  );
  const count = (action: string) => report.objects.filter((o) => o.action === action).length;
  lines.push(`pulled from ${report.dir} in ${seconds(report.durationMs)}: ${count('imported')} imported, ${count('refused')} refused, ${count('not in the cache')} not in the cache, ${report.present} already here`);
  return lines.join('\n');
}
