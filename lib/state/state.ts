import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** A process the lab started, identified by pid and kernel start time (a reused pid never matches). */
export interface ProcessRef {
  pid: number;
  startTime: string;
}

export interface MachineState {
  /** The nspawn process while the machine runs. */
  process?: ProcessRef;
  /** The key of the snapshot the machine's root was made from. */
  rootKey?: string;
  /** The stage that snapshot was taken after. */
  rootStage?: string;
  bootMs?: number;
}

export interface LabState {
  machines: Record<string, MachineState>;
  /** Sandbox mode: the simulated internet's echo server. */
  wanServer?: ProcessRef;
  /** The package proxy machines' apt uses (network/package-proxy.ts). */
  packageProxy?: ProcessRef;
  /** Host mode: the host's ip_forward before the lab turned it on, to put back on destroy. */
  hostIpForward?: string;
}

export function readState(file: string): LabState {
  flushState(file);
  if (!existsSync(file)) return { machines: {} };
  return JSON.parse(readFileSync(file, 'utf8')) as LabState;
}

/** The state directories made by this process: a lab of hundreds of machines writes its state thousands of times. */
const madeDirs = new Set<string>();

/** Written to a temporary file and renamed: a reader never sees half a state. */
export function writeState(file: string, state: LabState): void {
  cancelDeferred(file);
  writeNow(file, state);
}

/**
 * Writes deferred by writeStateLater, by file. On ext4 each rename over a state file flushes its
 * data, about 8 ms on a busy host: a room of hundreds of machines booting at once would spend
 * seconds recording boots one by one.
 */
const deferred = new Map<string, LabState>();

/**
 * A write that may be merged with the ones after it: done by the next writeState, readState or
 * flushStates of this process, or when it exits. A command killed meanwhile leaves machines it
 * started unrecorded, which the next command stops (stopUnrecorded).
 */
export function writeStateLater(file: string, state: LabState): void {
  if (deferred.size === 0) process.once('exit', flushStates);
  deferred.set(file, state);
}

export function flushStates(): void {
  for (const file of [...deferred.keys()]) flushState(file);
}

function flushState(file: string): void {
  const state = deferred.get(file);
  if (state === undefined) return;
  cancelDeferred(file);
  writeNow(file, state);
}

function cancelDeferred(file: string): void {
  if (deferred.delete(file) && deferred.size === 0) process.removeListener('exit', flushStates);
}

function writeNow(file: string, state: LabState): void {
  const dir = path.dirname(file);
  if (!madeDirs.has(dir)) {
    mkdirSync(dir, { recursive: true });
    madeDirs.add(dir);
  }
  const partial = `${file}.${process.pid}.tmp`;
  writeFileSync(partial, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(partial, file);
}
