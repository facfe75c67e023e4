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
  if (!existsSync(file)) return { machines: {} };
  return JSON.parse(readFileSync(file, 'utf8')) as LabState;
}

/** The state directories made by this process: a lab of hundreds of machines writes its state thousands of times. */
const madeDirs = new Set<string>();

/** Written to a temporary file and renamed: a reader never sees half a state. */
export function writeState(file: string, state: LabState): void {
  const dir = path.dirname(file);
  if (!madeDirs.has(dir)) {
    mkdirSync(dir, { recursive: true });
    madeDirs.add(dir);
  }
  const partial = `${file}.${process.pid}.tmp`;
  writeFileSync(partial, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(partial, file);
}
