import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { flushStates, readState, writeState, writeStateLater } from '../../lib/state/state.js';

const dirs: string[] = [];
afterEach(() => {
  flushStates();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function stateFile(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'lab-state-'));
  dirs.push(dir);
  return path.join(dir, 'state.json');
}

const onDisk = (file: string) => JSON.parse(readFileSync(file, 'utf8'));

describe('deferred state writes', () => {
  it('merges writes until a flush, and writes the last state', () => {
    const file = stateFile();
    writeStateLater(file, { machines: { a: { bootMs: 1 } } });
    writeStateLater(file, { machines: { a: { bootMs: 2 } } });
    expect(existsSync(file)).toBe(false);
    flushStates();
    expect(onDisk(file)).toEqual({ machines: { a: { bootMs: 2 } } });
  });

  it('is written before this process reads the state, and overtaken by a direct write', () => {
    const file = stateFile();
    writeStateLater(file, { machines: { a: { bootMs: 1 } } });
    expect(readState(file)).toEqual({ machines: { a: { bootMs: 1 } } });
    writeStateLater(file, { machines: { a: { bootMs: 2 } } });
    writeState(file, { machines: { b: {} } });
    flushStates();
    expect(onDisk(file)).toEqual({ machines: { b: {} } });
  });

  it('is written when the process exits', () => {
    const file = stateFile();
    writeStateLater(file, { machines: { a: {} } });
    expect(process.listeners('exit')).toContain(flushStates);
    flushStates();
    expect(process.listeners('exit')).not.toContain(flushStates);
  });
});
