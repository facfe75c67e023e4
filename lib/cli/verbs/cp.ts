import { unknownName, UsageError } from '../../errors.js';
import type { CopyReport } from '../../engine/copy.js';
import { show, type Verb } from '../verb.js';

const USAGE = 'usage: lab cp <machine>:<path> <local path> | lab cp <local path> <machine>:<path>';

/** What `lab cp` was asked: one end in a machine (`web:/etc/x`), the other on the host. */
export interface CopyRequest {
  direction: 'from-machine' | 'to-machine';
  machine: string;
  machinePath: string;
  localPath: string;
  machineArgument: string;
  localArgument: string;
}

/** A machine's end is `<machine>:<path>`: a name as machines are named, then a colon. Anything else is a host path. */
const MACHINE_END = /^([a-z][a-z0-9-]*):(.*)$/s;

/** The two ends of a copy, checked before anything is looked at: exit 2 naming the argument. */
export function parseCopyRequest(args: readonly string[], machines: readonly string[]): CopyRequest {
  if (args.length !== 2) throw new UsageError(USAGE);
  const ends = args.map((argument) => {
    const match = MACHINE_END.exec(argument);
    if (!match) return undefined;
    const [, machine, machinePath] = match as unknown as [string, string, string];
    if (!machines.includes(machine)) throw new UsageError(`${argument}: ${unknownName('machine', machine, machines).message}`, `a host path with a colon in it: write ./${argument}`);
    if (!machinePath.startsWith('/')) throw new UsageError(`${argument}: the path in the machine must be absolute`);
    return { machine, machinePath, machineArgument: argument };
  });
  const [from, to] = ends;
  if (from && to) throw new UsageError('lab cp copies between a machine and the host, not between two machines', 'copy to the host first');
  if (!from && !to) throw new UsageError(`${USAGE}\nneither end names a machine (<machine>:<path>)`);
  return from ? { direction: 'from-machine', ...from, localPath: args[1]!, localArgument: args[1]! } : { direction: 'to-machine', ...to!, localPath: args[0]!, localArgument: args[0]! };
}

function printCopied(report: CopyReport): string {
  const count = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
  const skipped = report.skipped ? `; ${count(report.skipped, 'special file')} (devices, sockets, fifos) left out` : '';
  return `copied to ${report.to}: ${count(report.files, 'file')}, ${count(report.directories, 'directory', 'directories')}, ${count(report.links, 'link')}${skipped}`;
}

export default {
  name: 'cp',
  help: [
    ['cp <machine>:<path> <path>', 'copy a file or a tree out of a machine (running or stopped), or into it:', 'lab cp ./x web:/root/; links are resolved inside the machine, never out of it'],
  ],
  needsStages: false,
  async run(lab, args, _passthrough, options) {
    const request = parseCopyRequest(args, lab.config.machines.map((m) => m.name));
    const { copyFromMachine, copyToMachine } = await import('../../engine/copy.js');
    const report =
      request.direction === 'from-machine'
        ? await copyFromMachine(lab, request.machine, request.machinePath, request.localPath, request)
        : await copyToMachine(lab, request.localPath, request.machine, request.machinePath, request);
    show(options, report, printCopied);
    return 0;
  },
} satisfies Verb;
