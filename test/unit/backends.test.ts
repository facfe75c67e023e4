/**
 * The machine backends (engine/backends.ts): each machine's chosen by its kind, and what a vm
 * cannot do refused through its backend, against the fake drivers (./fakes.ts).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultLab } from '../../lib/config/default.js';
import { bisect } from '../../lib/engine/bisect.js';
import { copyFromMachine } from '../../lib/engine/copy.js';
import { machineApi } from '../../lib/engine/machines.js';
import { UsageError } from '../../lib/errors.js';
import { refOf } from '../../lib/state/process.js';
import { type LabState, writeState } from '../../lib/state/state.js';
import { type FakeLab, fakeLab } from './fakes.js';

let fake: FakeLab;

beforeEach(async () => {
  fake = await fakeLab({
    machines: [...defaultLab.machines, { name: 'rhfs', address: '10.224.0.20', stages: [] }, { name: 'pc', kind: 'vm' }],
    rooms: [{ machines: 1, root: { machine: 'rhfs', path: '/export/nfsroot_ro' } }],
  });
});

afterEach(async () => {
  await fake.cleanup();
});

/** The state of a lab whose machines `names` run as this very process (alive as far as lab can tell). */
function runningAsThisProcess(...names: string[]): LabState {
  const state: LabState = { machines: Object.fromEntries(names.map((name) => [name, { process: refOf(process.pid)! }])) };
  writeState(fake.lab.dirs.stateFile, state);
  return state;
}

describe('machine backends', () => {
  it("are chosen by each machine's kind: containers and diskless machines run commands, a vm has a console instead", () => {
    const { backendOf } = fake.lab;
    expect(backendOf('gw').what).toBe('a container');
    expect(backendOf('gw').exec).toBeDefined();
    expect(backendOf('gw').console).toBeUndefined();
    expect(backendOf('r01p01').what).toBe('a diskless machine');
    expect(backendOf('r01p01').exec).toBe(backendOf('gw').exec);
    expect(backendOf('r01p01').start).not.toBe(backendOf('gw').start);
    expect(backendOf('pc').what).toBe('a vm');
    expect(backendOf('pc').exec).toBeUndefined();
    expect(backendOf('pc').leaderPid).toBeUndefined();
    expect(backendOf('pc').console?.(fake.lab, 'pc')).toEqual({ socket: fake.lab.vms.consoleSocket('pc'), log: fake.lab.dirs.consoleLog('pc') });
    expect(backendOf('pc').downWhileItsServerIs && !backendOf('gw').downWhileItsServerIs).toBe(true);
    // A machine the config no longer names, still in the state, is stopped as the container it was.
    expect(backendOf('gone')).toBe(backendOf('gw'));
  });

  it("run a container's commands through the runtime, and refuse a vm's, naming its console", async () => {
    const state = runningAsThisProcess('gw', 'pc');
    expect((await machineApi(fake.lab, state, 'gw').execute(['hostname'])).exitCode).toBe(0);
    expect(fake.events.of('exec')).toEqual(['gw hostname']);
    await expect(machineApi(fake.lab, state, 'pc').execute(['hostname'])).rejects.toThrow(new UsageError('pc is a vm: lab runs no command in it; use its console (waitForConsoleText, sendConsole, lab console pc)'));
    await expect(copyFromMachine(fake.lab, 'pc', '/etc/hostname', fake.dir)).rejects.toThrow('pc:/etc/hostname: pc is a vm: lab has no way into its files');
  });

  it("show a vm's console where a container's journal is shown", async () => {
    mkdirSync(path.dirname(fake.lab.dirs.consoleLog('pc')), { recursive: true });
    writeFileSync(fake.lab.dirs.consoleLog('pc'), 'iPXE\r\n\x1b[1mbooting\x1b[0m\r\nlogin:\n');
    const handle = { name: 'pc', process: refOf(process.pid)! };
    expect(await fake.lab.backendOf('pc').diagnostics(fake.lab, 'pc', handle.process, 2)).toEqual({ failedUnits: '(a vm: no units lab can read)', journal: 'booting\nlogin:' });
  });

  it('refuse to bisect a machine without stages (a vm, a diskless machine), exit 2', async () => {
    const scenarios = mkdtempSync(path.join(tmpdir(), 'lab-backends-'));
    writeFileSync(path.join(scenarios, 'x.test.ts'), '');
    await expect(bisect(fake.lab, 'x', 'pc', { scenariosDir: scenarios })).rejects.toThrow(new UsageError('pc is a vm: it has no stages to bisect'));
    await expect(bisect(fake.lab, 'x', 'r01p01', { scenariosDir: scenarios })).rejects.toThrow(new UsageError('r01p01 is a diskless machine: it has no stages to bisect'));
  });
});
