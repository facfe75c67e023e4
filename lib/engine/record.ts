import { createRequire } from 'node:module';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { PACKAGE_NAME, packageRoot } from '../paths.js';
import { readState } from '../state/state.js';
import type { BareLab } from './lab.js';
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
  if (lab.vms.has(machine)) throw new UsageError(`${machine} is a vm: lab runs no command in it to record what it is`);
  for (const file of files) if (!path.isAbsolute(file)) throw new UsageError(`--file ${file}: give the path inside the machine, absolute`);
  const state = readState(lab.dirs.stateFile);
  if (!isRunning(state, machine)) throw new UsageError(`machine ${machine} is not running`, 'start the lab with: lab up');
  const handle = { name: machine, process: state.machines[machine]!.process! };
  const exec = async (argv: string[]) => (await lab.runtime.exec(handle, argv, { timeout: 30_000 })).stdout;
  const units = (text: string) => text.split('\n').map((line) => line.trim().split(/\s+/)[0]!).filter((unit) => unit.endsWith('.service') && !unit.includes('@'));
  const enabled = new Set(units(await exec(['systemctl', 'list-unit-files', '--type=service', '--state=enabled', '--no-legend', '--no-pager'])));
  const active = units(await exec(['systemctl', 'list-units', '--type=service', '--state=active', '--no-legend', '--no-pager', '--plain']));
  let sums = '';
  if (files.length) {
    const summed = await lab.runtime.exec(handle, ['sha256sum', '--', ...files], { timeout: 30_000, allowFailure: true });
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
  const q = (text: string) => `'${text.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
  const list = (items: readonly (string | number)[]) => `[${items.map((item) => (typeof item === 'number' ? String(item) : q(item))).join(', ')}]`;
  const variable = record.machine.replace(/[^A-Za-z0-9_]/g, '_').replace(/^(\d)/, '_$1');
  const lines = [
    `// Recorded by \`lab record ${record.machine}\` on ${when}: what ${record.machine} was then.`,
    '// A starting point: keep what matters, remove what is incidental, add what is missing.',
    "import { describe, expect, it } from 'vitest';",
    `import { useLab } from ${q(importFrom)};`,
    '',
    'const lab = await useLab();',
    `const ${variable} = lab.machine(${q(record.machine)});`,
    '',
    `describe(${q(`${record.machine} as recorded`)}, () => {`,
  ];
  if (record.services.length) {
    lines.push(`  it.each(${list(record.services)})('%s is enabled and active', async (unit) => {`, `    await expect(${variable}).toHaveServiceEnabledAndActive(unit);`, '  });', '');
  }
  for (const protocol of ['tcp', 'udp'] as const) {
    const ports = record.ports.filter((p) => p.protocol === protocol).map((p) => p.port);
    if (ports.length) lines.push(`  it.each(${list(ports)})('listens on ${protocol.toUpperCase()} port %i', async (port) => {`, `    await expect(${variable}).toListenOn(port, '${protocol}');`, '  });', '');
  }
  for (const { interface: name, address } of record.addresses) {
    lines.push(`  it(${q(`has ${address} on ${name}`)}, async () => {`, `    expect(await ${variable}.succeed(['ip', '-o', 'addr', 'show', 'dev', ${q(name)}])).toContain(${q(` ${address} `)});`, '  });', '');
  }
  for (const file of record.files) {
    lines.push(`  it(${q(`has ${file.path} as recorded`)}, async () => {`, `    expect((await ${variable}.succeed(['sha256sum', '--', ${q(file.path)}])).split(' ')[0]).toBe(${q(file.sha256)});`, '  });', '');
  }
  if (lines.at(-1) === '') lines.pop();
  lines.push('});', '');
  return lines.join('\n');
}
