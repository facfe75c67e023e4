import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { GlobalOptions } from '../../lib/cli/verb.js';
import graph from '../../lib/cli/verbs/graph.js';
import record from '../../lib/cli/verbs/record.js';
import { defaultLab } from '../../lib/config/default.js';
import { topologyOf } from '../../lib/config/topology.js';
import { validateConfig } from '../../lib/config/validate.js';
import type { BareLab } from '../../lib/engine/lab-types.js';
import { colourEnv } from '../../lib/engine/test.js';
import { printRestore } from '../../lib/cli/format.js';
import { packageRoot } from '../../lib/paths.js';

const options = (output: string): GlobalOptions => ({ output, json: false, noCache: false, wait: false, serial: false, verbose: false, capture: false, watch: false, debug: false, wholeLab: false, dryRun: false, idempotence: false });
const config = validateConfig(defaultLab);
/** A lab that fails any use beyond its config and topology: the output is refused before the lab is asked anything. */
const lab = new Proxy({ config, topology: topologyOf(config) } as BareLab, {
  get: (target, key) => (key in target ? target[key as keyof BareLab] : (() => { throw new Error(`the lab was used: ${String(key)}`); })()),
});

describe('-o into a directory that does not exist', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lab-output-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const missing = path.join(dir, 'no-such-dir', 'out.svg');

  it('lab graph -o: exit 2 naming -o and the directory', async () => {
    await expect(graph.run(lab, [], [], options(missing))).rejects.toMatchObject({ exitCode: 2, message: `-o, --output ${missing}: the directory ${path.dirname(missing)} does not exist` });
    mkdirSync(path.join(dir, 'drawn.svg'));
    await expect(graph.run(lab, [], [], options(path.join(dir, 'drawn.svg')))).rejects.toMatchObject({ exitCode: 2, message: expect.stringContaining('drawn.svg: is a directory, not a file') });
    const file = path.join(dir, 'topology.mmd');
    expect(await graph.run(lab, [], [], options(file))).toBe(0);
    expect(readFileSync(file, 'utf8')).toMatch(/^flowchart TB/);
  });

  it('lab record -o: exit 2 naming -o, before the machine is asked anything', async () => {
    const scenario = path.join(dir, 'no-such-dir', 'gw.test.ts');
    await expect(record.run(lab, ['gw'], [], options(scenario))).rejects.toMatchObject({ exitCode: 2, message: `-o, --output ${scenario}: the directory ${path.dirname(scenario)} does not exist` });
    await expect(record.run(lab, ['gw'], [], options(dir))).rejects.toMatchObject({ exitCode: 2, message: `-o, --output ${dir}: is a directory, not a file` });
  });
});

describe("lab test's output to a file or a pipe", () => {
  it('has no colour codes: vitest is loaded with NO_COLOR, unless the user chose', () => {
    expect(colourEnv({}, 'simple')).toEqual({ NO_COLOR: '1' });
    expect(colourEnv({}, 'default')).toEqual({}); // a terminal
    expect(colourEnv({ FORCE_COLOR: '1' }, 'simple')).toEqual({});
    // vitest's colour library asks no isatty: piped, it colours unless told otherwise as it loads.
    const red = (env: Record<string, string>) =>
      spawnSync(process.execPath, ['--input-type=module', '-e', "const { default: c } = await import('tinyrainbow'); process.stdout.write(c.red('x'))"], { env: { PATH: process.env.PATH!, ...env }, cwd: packageRoot, encoding: 'utf8' }).stdout;
    expect(red({})).toBe('\u001b[31mx\u001b[39m');
    expect(red(colourEnv({}, 'simple'))).toBe('x');
  });
});

describe("restore's summary", () => {
  const report = { restored: [{ machine: 'web-silicon', stage: 'nginx', key: 'k', current: true, bootMs: 900 }], rebooted: ['web'], leftAlone: ['gw', 'web'], leftStopped: [], durationMs: 2000 };

  it('names a machine once: rebooted, or left alone', () => {
    const text = printRestore(report);
    expect(text).toContain('rebooted (they depend on a restored machine): web\n');
    expect(text).toContain('left alone (the stage is not theirs): gw\n');
  });

  it('after a checkpoint, says the machines left alone were not in it', () => {
    expect(printRestore({ ...report, checkpoint: 'before', rebooted: [], leftAlone: ['pc'] })).toContain('left alone (not in the checkpoint): pc\n');
  });
});
