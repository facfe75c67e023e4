import { createRequire } from 'node:module';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { PACKAGE_NAME, packageRoot } from '../paths.js';
import { readState } from '../state/state.js';
import type { BareLab } from './lab-types.js';
import { assertMachine, isRunning } from './machines.js';

/** What a machine is now, as `lab record` asserts it. */
export interface MachineRecord {
  machine: string;
  /** Services both enabled and active. */
  services: string[];
  ports: { protocol: 'tcp' | 'udp'; port: number }[];
  /** `address/prefix` by interface, loopback left out. */
  addresses: { interface: string; address: string }[];
  files: { path: string; sha256: string }[];
}

/** Local ports of `ss -Hl[tu]n` lines: `State Recv-Q Send-Q Local-Address:Port Peer...`. */
export function listeningPorts(ssOutput: string): number[] {
  const ports = ssOutput
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[3])
    .map((local) => Number(local?.slice(local.lastIndexOf(':') + 1)))
    .filter((port) => Number.isInteger(port) && port > 0);
  return [...new Set(ports)].sort((a, b) => a - b);
}

/** `ip -4 -o addr show` lines: `2: host0    inet 10.224.0.254/24 brd ...`. */
export function interfaceAddresses(ipOutput: string): { interface: string; address: string }[] {
  return ipOutput
    .split('\n')
    .map((line) => /^\d+:\s+(\S+)\s+inet6?\s+(\S+)/.exec(line.trim()))
    .filter((m): m is RegExpExecArray => m !== null && m[1] !== 'lo')
    .map((m) => ({ interface: m[1]!.replace(/@.*$/, ''), address: m[2]! }));
}

/** Reads the machine's services, ports, addresses and the files asked for, in a few commands. */
export async function recordMachine(lab: BareLab, machine: string, files: readonly string[]): Promise<MachineRecord> {
  assertMachine(lab, machine);
  const backend = lab.backendOf(machine);
  if (!backend.exec) throw new UsageError(`${machine} is ${backend.what}: lab runs no command in it to record what it is`);
  for (const file of files) if (!path.isAbsolute(file)) throw new UsageError(`--file ${file}: give the path inside the machine, absolute`);
  const state = readState(lab.dirs.stateFile);
  if (!isRunning(state, machine)) throw new UsageError(`machine ${machine} is not running`, 'start the lab with: lab up');
  const handle = { name: machine, process: state.machines[machine]!.process! };
  const execIn = backend.exec;
  const exec = async (argv: string[]) => (await execIn(lab, handle, argv, { timeout: 30_000 })).stdout;
  const units = (text: string) => text.split('\n').map((line) => line.trim().split(/\s+/)[0]!).filter((unit) => unit.endsWith('.service') && !unit.includes('@'));
  const enabled = new Set(units(await exec(['systemctl', 'list-unit-files', '--type=service', '--state=enabled', '--no-legend', '--no-pager'])));
  const active = units(await exec(['systemctl', 'list-units', '--type=service', '--state=active', '--no-legend', '--no-pager', '--plain']));
  let sums = '';
  if (files.length) {
    const summed = await execIn(lab, handle, ['sha256sum', '--', ...files], { timeout: 30_000, allowFailure: true });
    if (summed.exitCode !== 0) throw new UsageError(`--file: ${summed.stderr.trim() || `sha256sum exit code ${summed.exitCode}`} (in ${machine})`);
    sums = summed.stdout;
  }
  return {
    machine,
    services: active.filter((unit) => enabled.has(unit)).sort(),
    ports: [
      ...listeningPorts(await exec(['ss', '-Hltn'])).map((port) => ({ protocol: 'tcp' as const, port })),
      ...listeningPorts(await exec(['ss', '-Hlun'])).map((port) => ({ protocol: 'udp' as const, port })),
    ],
    addresses: interfaceAddresses(await exec(['ip', '-o', 'addr', 'show'])),
    files: files.map((file, index) => ({ path: file, sha256: sums.split('\n')[index]!.split(/\s+/)[0]! })),
  };
}

/**
 * Every running container's record (`files` as `<machine>:<path>`), and what could not be
 * recorded: vms, and machines that do not run.
 */
export async function recordLab(lab: BareLab, files: readonly string[]): Promise<{ records: MachineRecord[]; notRecorded: string[] }> {
  const names = lab.config.machines.map((m) => m.name);
  const filesOf = new Map<string, string[]>();
  for (const file of files) {
    const [machine, ...rest] = file.split(':');
    if (!machine || rest.length === 0 || !names.includes(machine)) throw new UsageError(`--file ${file}: with --lab, say which machine's file it is: <machine>:<path>, one of ${names.join(', ')}`);
    filesOf.set(machine, [...(filesOf.get(machine) ?? []), rest.join(':')]);
  }
  const state = readState(lab.dirs.stateFile);
  const records: MachineRecord[] = [];
  const notRecorded: string[] = [];
  for (const name of names) {
    if (!lab.backendOf(name).exec) notRecorded.push(`${name} (${lab.backendOf(name).what})`);
    else if (!isRunning(state, name)) notRecorded.push(`${name} (not running)`);
    else records.push(await recordMachine(lab, name, filesOf.get(name) ?? []));
  }
  for (const machine of filesOf.keys()) if (!records.some((r) => r.machine === machine)) throw new UsageError(`--file: ${machine} is not recorded (${notRecorded.find((n) => n.startsWith(`${machine} `))})`);
  if (records.length === 0) throw new UsageError('no machine of the lab is running: nothing to record', 'start the lab with: lab up');
  return { records, notRecorded };
}

/**
 * The module a recorded scenario imports the scenario API from: `sadm-lab/scenario` where that
 * resolves from where the file goes (a team's repository with lab as a dependency), else this
 * lab's own.
 */
export function scenarioImport(outputDir: string): string {
  try {
    createRequire(path.join(outputDir, 'noop.js')).resolve(`${PACKAGE_NAME}/package.json`);
    return `${PACKAGE_NAME}/scenario`;
  } catch {
    return path.join(packageRoot, 'dist', 'lib', 'scenario', 'index.js');
  }
}

/** A scenario file that asserts the record: it passes as written on the machine it came from. */
export function recordedScenario(record: MachineRecord, importFrom: string, when: string): string {
  return scenarioFile([record], importFrom, [`// Recorded by \`lab record ${record.machine}\` on ${when}: what ${record.machine} was then.`]);
}

/**
 * The whole lab's signature as one scenario (as Kathará's `ltest --verify` or goss's `autoadd`
 * capture a reference): a block per running container. What could not be recorded (a vm, a
 * machine that does not run) is named at the top.
 */
export function recordedLabScenario(records: readonly MachineRecord[], notRecorded: readonly string[], importFrom: string, when: string): string {
  return scenarioFile(records, importFrom, [
    `// Recorded by \`lab record --lab\` on ${when}: what every running machine of the lab was then.`,
    ...(notRecorded.length ? [`// Not recorded: ${notRecorded.join('; ')}.`] : []),
  ]);
}

function scenarioFile(records: readonly MachineRecord[], importFrom: string, header: string[]): string {
  const lines = [
    ...header,
    '// A starting point: keep what matters, remove what is incidental, add what is missing.',
    "import { describe, expect, it } from 'vitest';",
    `import { useLab } from ${quote(importFrom)};`,
    '',
    'const lab = await useLab();',
    '',
  ];
  for (const record of records) lines.push(...machineBlock(record), '');
  lines.pop();
  return `${lines.join('\n')}\n`;
}

const quote = (text: string) => `'${text.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;

/** One machine's describe block: its services, ports, addresses and files. */
function machineBlock(record: MachineRecord): string[] {
  const list = (items: readonly (string | number)[]) => `[${items.map((item) => (typeof item === 'number' ? String(item) : quote(item))).join(', ')}]`;
  const machine = `lab.machine(${quote(record.machine)})`;
  const lines = [`describe(${quote(`${record.machine} as recorded`)}, () => {`, `  const machine = ${machine};`, ''];
  if (record.services.length) {
    lines.push(`  it.each(${list(record.services)})('%s is enabled and active', async (unit) => {`, '    await expect(machine).toHaveServiceEnabledAndActive(unit);', '  });', '');
  }
  for (const protocol of ['tcp', 'udp'] as const) {
    const ports = record.ports.filter((p) => p.protocol === protocol).map((p) => p.port);
    if (ports.length) lines.push(`  it.each(${list(ports)})('listens on ${protocol.toUpperCase()} port %i', async (port) => {`, `    await expect(machine).toListenOn(port, '${protocol}');`, '  });', '');
  }
  for (const { interface: name, address } of record.addresses) {
    lines.push(`  it(${quote(`has ${address} on ${name}`)}, async () => {`, `    expect(await machine.succeed(['ip', '-o', 'addr', 'show', 'dev', ${quote(name)}])).toContain(${quote(` ${address} `)});`, '  });', '');
  }
  for (const file of record.files) {
    lines.push(`  it(${quote(`has ${file.path} as recorded`)}, async () => {`, `    expect((await machine.succeed(['sha256sum', '--', ${quote(file.path)}])).split(' ')[0]).toBe(${quote(file.sha256)});`, '  });', '');
  }
  if (lines.at(-1) === '') lines.pop();
  lines.push('});');
  return lines;
}
