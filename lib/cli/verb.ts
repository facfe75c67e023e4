import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { BareLab, Lab } from '../engine/lab-types.js';
import { UsageError } from '../errors.js';

/** What main.ts parsed from the command line, for every verb (each reads the options it has). */
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
  /** lab test --watch. */
  watch: boolean;
  /** lab test --debug. */
  debug: boolean;
  /** lab record --lab: every machine. */
  wholeLab: boolean;
  /** lab up --dry-run. */
  dryRun: boolean;
  /** lab test --shard i/n, and --shard-durations <run>. */
  shard?: string;
  shardDurations?: string;
  output?: string;
  idempotence: boolean;
  files?: string[];
  runtime?: string;
  /** Milliseconds, from --timeout. */
  timeout?: number;
  /** lab inventory --format. */
  format?: string;
  /** lab bisect --good and --bad: the ends of the search. */
  good?: string;
  bad?: string;
}

/**
 * A line of lab --help: what is written on the left (a usage, or an option when it starts with
 * '-'), then what it does, one string per line.
 */
export type HelpLine = [left: string, about: string, ...more: string[]];

interface VerbBase {
  name: string;
  /** Its lines in lab --help, its options under the usage they belong to. */
  help: HelpLine[];
  /** Works on a lab whose config names paths that are gone (bind sources, disks): destroy, down, doctor. */
  toleratesMissingPaths?: true;
}

type Run<L> = (lab: L, args: string[], passthrough: string[], options: GlobalOptions) => Promise<number>;

/**
 * One CLI verb, in one file under cli/verbs/. A verb that runs no stage opens the lab without its
 * stage modules (needsStages: false), which is what keeps lab exec fast; one that makes or checks a
 * lab's files (init, validate) opens none (opensLab: false).
 */
export type Verb = VerbBase & ({ needsStages: true; run: Run<Lab> } | { needsStages: false; run: Run<BareLab> } | { opensLab: false; needsStages?: undefined; run: (args: string[], options: GlobalOptions) => Promise<number> });

export const out = (text: string) => process.stdout.write(`${text}\n`);
export const json = (value: unknown) => out(JSON.stringify(value, null, 2));

/** Where `-o` writes, resolved: a directory that is not there, or a directory for the file, is bad usage, said before anything runs. */
export function outputPath(file: string): string {
  const target = path.resolve(file);
  const dir = path.dirname(target);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`-o, --output ${file}: the directory ${dir} does not exist`);
  if (existsSync(target) && statSync(target).isDirectory()) throw new UsageError(`-o, --output ${file}: is a directory, not a file`);
  return target;
}

/** A verb's result: the report itself with --json, else as print writes it. */
export function show<T>(options: GlobalOptions, report: T, print: (report: T) => string): void {
  if (options.json) json(report);
  else out(print(report));
}
