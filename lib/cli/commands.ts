import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { CommandError, formatArgv } from '../exec.js';
import { type BareLab, openBareLab, openLab } from '../engine/lab.js';
import { assertMachine, isRunning } from '../engine/machines.js';
import type { MachineHandle } from '../runtime/runtime.js';
import { readState } from '../state/state.js';
import { printBisect, printIdempotence, printImages, printCheckpoints, printCheckpointSaved, printDoctor, printRestore, printSnapshots, printStatus, printUp } from './format.js';
import { rendererFor, upProgress } from './progress.js';

/** Commands that run no stage: they open the lab without its stage modules. */
const BARE_COMMANDS = new Set(['inventory', 'exec', 'shell', 'console', 'down', 'destroy', 'doctor', 'graph', 'record']);

export interface GlobalOptions {
  config?: string;
  name?: string;
  json: boolean;
  noCache: boolean;
  from?: string;
  until?: string;
  wait: boolean;
  scenarios?: string;
  reports?: string;
  serial: boolean;
  verbose: boolean;
  capture: boolean;
  output?: string;
  idempotence: boolean;
  files?: string[];
  runtime?: string;
  /** Milliseconds, from --timeout. */
  timeout?: number;
  /** lab inventory --format. */
  format?: string;
}

const out = (text: string) => process.stdout.write(`${text}\n`);
const json = (value: unknown) => out(JSON.stringify(value, null, 2));

export async function runCommand(command: string, args: string[], passthrough: string[], options: GlobalOptions): Promise<number> {
  // Each command loads only what it uses (the engine's modules, listr2, vitest): exec and status start fast.
  const where = { file: options.config, name: options.name, runtime: options.runtime };
  if (BARE_COMMANDS.has(command)) return runBareCommand(command, args, passthrough, options, await openBareLab(where));
  const lab = await openLab(where);
  switch (command) {
    case 'up': {
      const [{ up }, { parseStageRef }] = await Promise.all([import('../engine/up.js'), import('../plan/plan.js')]);
      for (const name of args) assertMachine(lab, name);
      const onProgress = await upProgress(rendererFor(options.json));
      if (options.idempotence) {
        const { checkIdempotence } = await import('../engine/idempotence.js');
        const report = await checkIdempotence(lab, { machines: args, onProgress });
        if (options.json) json(report);
        else out(printIdempotence(report));
        return report.idempotent ? 0 : 1;
      }
      const report = await up(lab, {
        plan: {
          only: args,
          noCache: options.noCache,
          from: options.from ? parseStageRef(options.from, lab.loaded.machines, { controller: lab.loaded.controller.map((s) => s.name) }) : undefined,
          until: options.until ? parseStageRef(options.until, lab.loaded.machines, { controller: lab.loaded.controller.map((s) => s.name) }) : undefined,
        },
        waitForLock: options.wait,
        onProgress,
      });
      if (options.json) json(report);
      else out(printUp(report));
      return 0;
    }
    case 'restore': {
      const [ref, ...extra] = args;
      if (!ref || extra.length > 0) throw new UsageError('usage: lab restore <stage> | <machine>@<stage>');
      const { restore } = await import('../engine/restore.js');
      const report = await restore(lab, ref, { waitForLock: options.wait });
      if (options.json) json(report);
      else out(printRestore(report));
      return 0;
    }
    case 'test': {
      const { runTests } = await import('../engine/test.js');
      const renderer = rendererFor(options.json);
      const { report, dir } = await runTests(lab, {
        scenarios: args,
        scenariosDir: options.scenarios,
        reportsDir: path.resolve(options.reports ?? 'reports'),
        serial: options.serial,
        capture: options.capture,
        renderer,
        onProgress: await upProgress(renderer),
        verbose: options.verbose,
      });
      if (options.json) json({ ...report, reportDir: dir });
      else out(`lab test: ${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped in ${(report.durationMs / 1000).toFixed(1)}s\nreport: ${path.join(dir, 'report.html')}`);
      return report.outcome === 'passed' ? 0 : 1;
    }
    case 'image': {
      const [verb, file, ...extra] = args;
      const usage = 'usage: lab image export <file.tar> [--from <machine>@<stage>] | upgrade | list';
      const images = await import('../engine/image.js');
      if (verb === 'upgrade' || verb === 'list') {
        if (file !== undefined) throw new UsageError(usage);
        if (verb === 'list') {
          const list = await images.listImages(lab);
          if (options.json) json(list);
          else out(printImages(list));
          return 0;
        }
        const upgraded = await images.upgradeImage(lab);
        if (options.json) json(upgraded);
        else out(upgraded.to ? `base image upgraded: ${upgraded.from} -> ${upgraded.to} in ${(upgraded.durationMs / 1000).toFixed(1)}s (log: ${upgraded.log})\nthe next lab up rebuilds every stage on it; lab restore still reaches the old snapshots until they are pruned` : `base image ${upgraded.from} is up to date: nothing to upgrade`);
        return 0;
      }
      if (verb !== 'export' || !file || extra.length > 0) throw new UsageError(usage);
      const { exportImage } = images;
      const result = await exportImage(lab, file, options.from);
      if (options.json) json(result);
      else out(`wrote ${result.file} (from ${result.source})`);
      return 0;
    }
    case 'bisect': {
      const [scenario, machine, ...extra] = args;
      if (!scenario || extra.length > 0) throw new UsageError('usage: lab bisect <scenario> [machine]');
      const { bisect } = await import('../engine/bisect.js');
      const report = await bisect(lab, scenario, machine, { scenariosDir: options.scenarios, progress: options.json ? undefined : (line) => process.stderr.write(`bisect: ${line}\n`) });
      if (options.json) json(report);
      else out(printBisect(report));
      return report.boundary ? 0 : 1;
    }
    case 'checkpoint': {
      const [verb, name, ...extra] = args;
      const usage = 'usage: lab checkpoint save <name> | list | delete <name>';
      if (extra.length > 0 || !verb || (verb === 'list') !== (name === undefined)) throw new UsageError(usage);
      const checkpoints = await import('../engine/checkpoints.js');
      if (verb === 'save') {
        const saved = await checkpoints.saveCheckpoint(lab, name!);
        if (options.json) json(saved);
        else out(printCheckpointSaved(saved));
      } else if (verb === 'list') {
        const all = checkpoints.listCheckpoints(lab);
        if (options.json) json(all);
        else out(printCheckpoints(all));
      } else if (verb === 'delete') {
        await checkpoints.deleteCheckpoint(lab, name!);
        if (!options.json) out(`checkpoint ${name} deleted`);
      } else throw new UsageError(usage);
      return 0;
    }
    case 'snapshots': {
      const { snapshotsReport } = await import('../engine/snapshots.js');
      const report = await snapshotsReport(lab);
      if (options.json) json(report);
      else out(printSnapshots(report));
      return 0;
    }
    case 'status': {
      const { status } = await import('../engine/status.js');
      const result = await status(lab);
      if (options.json) json(result);
      else out(printStatus(result));
      return 0;
    }
  }
  throw new UsageError(`unknown command '${command}'`);
}

async function runBareCommand(command: string, args: string[], passthrough: string[], options: GlobalOptions, lab: BareLab): Promise<number> {
  switch (command) {
    case 'exec': {
      const [machine, ...rest] = args;
      const argv = [...rest, ...passthrough];
      if (!machine || argv.length === 0) throw new UsageError('usage: lab exec <machine> -- <command> [args...]');
      return runInMachine(lab, machine, (handle) => execInteractive(lab, handle, argv, options.timeout));
    }
    case 'shell': {
      const [machine] = args;
      if (!machine) throw new UsageError('usage: lab shell <machine>');
      return runInMachine(lab, machine, (handle) => lab.runtime.shell(handle));
    }
    case 'console': {
      const [machine, ...extra] = args;
      if (!machine || extra.length > 0) throw new UsageError('usage: lab console <vm>');
      assertMachine(lab, machine);
      if (!lab.vms.has(machine)) throw new UsageError(`${machine} is a container: it has no serial console of lab's`, `use lab shell ${machine}`);
      if (!isRunning(readState(lab.dirs.stateFile), machine)) throw new UsageError(`vm ${machine} is not running`, 'start the lab with: lab up');
      const { attachConsole } = await import('../vm/console.js');
      await attachConsole(lab.vms.consoleSocket(machine), process.stdin, process.stdout);
      return 0;
    }
    case 'down': {
      const { down } = await import('../engine/lifecycle.js');
      const stopped = await down(lab);
      out(stopped.length ? `stopped ${stopped.join(', ')}` : 'no machine was running');
      return 0;
    }
    case 'destroy': {
      const { destroy } = await import('../engine/lifecycle.js');
      await destroy(lab);
      out(`lab ${lab.config.name} destroyed`);
      return 0;
    }
    case 'inventory': {
      if (args.length > 0) throw new UsageError('usage: lab inventory [--format yaml|ini|json|ssh]');
      const format = options.format ?? 'yaml';
      const formats = ['yaml', 'ini', 'json', 'ssh'];
      if (!formats.includes(format)) throw new UsageError(`--format: unknown format '${format}' (valid: ${formats.join(', ')})`);
      const controller = await import('../engine/controller.js');
      const inventory = await import('../controller/inventory.js');
      const state = readState(lab.dirs.stateFile);
      if (format === 'ssh') {
        const files = await controller.writeControllerFiles(lab, state);
        out((await import('node:fs')).readFileSync(files.sshConfig, 'utf8').trimEnd());
        return 0;
      }
      const found = await controller.labInventory(lab, state);
      if (format === 'json') json(inventory.inventoryJson(found));
      else if (format === 'ini') out(inventory.inventoryIni(found).trimEnd());
      else out((await import('yaml')).stringify(inventory.inventoryYamlObject(found)).trimEnd());
      return 0;
    }
    case 'graph': {
      if (args.length > 0) throw new UsageError('usage: lab graph [--output <file.svg|file.html|file.mmd>]');
      const graph = await import('../report/graph.js');
      const file = options.output;
      if (!file) {
        out(graph.toMermaid(lab.topology).trimEnd());
        return 0;
      }
      const kind = path.extname(file);
      const render = { '.svg': () => graph.toSvg(lab.topology), '.html': () => graph.toHtmlPage(`lab ${lab.config.name}: topology`, lab.topology), '.mmd': () => graph.toMermaid(lab.topology) }[kind];
      if (!render) throw new UsageError(`--output ${file}: use a .svg, .html or .mmd file`);
      writeFileSync(file, render());
      out(`wrote ${file}`);
      return 0;
    }
    case 'record': {
      const [machine, ...extra] = args;
      if (!machine || extra.length > 0) throw new UsageError('usage: lab record <machine> [--file <path in the machine>]... [--output <file.test.ts>]');
      const record = await import('../engine/record.js');
      const recorded = await record.recordMachine(lab, machine, options.files ?? []);
      if (options.json) {
        json(recorded);
        return 0;
      }
      const target = options.output ? path.resolve(options.output) : undefined;
      const scenario = record.recordedScenario(recorded, record.scenarioImport(target ? path.dirname(target) : process.cwd()), new Date().toISOString());
      if (!target) out(scenario.trimEnd());
      else {
        writeFileSync(target, scenario);
        out(`wrote ${target}: ${recorded.services.length} services, ${recorded.ports.length} ports, ${recorded.addresses.length} addresses, ${recorded.files.length} files`);
      }
      return 0;
    }
    case 'doctor': {
      const { doctor } = await import('../engine/doctor.js');
      const report = await doctor(lab);
      if (options.json) json(report);
      else out(printDoctor(report));
      return 0;
    }
  }
  throw new UsageError(`unknown command '${command}'`);
}

const EXIT_TIMED_OUT = 124; // as timeout(1)

/**
 * `lab exec`: the command runs with the terminal; when its time is up it is ended in the machine
 * with everything it started there. (SIGINT, SIGTERM and SIGHUP do the same: cli/main.ts.)
 */
async function execInteractive(lab: BareLab, handle: MachineHandle, argv: string[], timeout = 24 * 3600_000): Promise<number> {
  try {
    return (await lab.runtime.exec(handle, argv, { inherit: true, allowFailure: true, timeout })).exitCode;
  } catch (error) {
    if (!(error instanceof CommandError && error.timedOut)) throw error;
    process.stderr.write(`lab: ${formatArgv(argv)} timed out after ${timeout} ms: it was ended in ${handle.name}, with everything it started there\n`);
    return EXIT_TIMED_OUT;
  }
}

async function runInMachine(lab: BareLab, machine: string, body: (handle: MachineHandle) => Promise<number>): Promise<number> {
  assertMachine(lab, machine);
  const state = readState(lab.dirs.stateFile);
  if (lab.vms.has(machine)) throw new UsageError(`${machine} is a vm: lab runs no command in it`, `attach to its serial console with: lab console ${machine}`);
  if (!isRunning(state, machine)) throw new UsageError(`machine ${machine} is not running`, 'start the lab with: lab up');
  return body({ name: machine, process: state.machines[machine]!.process! });
}
