import { readFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';
import type { StageContext, StageDefinition } from './define.js';
import { parseStageHeader, SHELL_FIXTURES } from './shell.js';

/**
 * Stages written for a configuration tool, applied inside their machine by the tool itself:
 * `<stage>.pp` with `puppet apply`, `<stage>.yml` with `ansible-playbook` on the machine as
 * localhost. The tool is installed in the machine from the image's mirror (a package of the
 * stage), so the host needs neither. They run online (booted: services start, as with a real
 * agent) unless the file says `# lab: offline`. A failed resource or task fails the stage.
 */

export type ToolKind = 'puppet' | 'ansible';

export const TOOL_EXTENSIONS: Record<string, ToolKind> = { '.pp': 'puppet', '.yml': 'ansible', '.yaml': 'ansible' };

/** The package of each tool, per distribution of the image. */
const TOOL_PACKAGES: Record<ToolKind, Record<string, string>> = {
  puppet: { debian: 'puppet-agent', ubuntu: 'puppet', arch: 'puppet' },
  ansible: { debian: 'ansible-core', ubuntu: 'ansible-core', arch: 'ansible-core' },
};

/** Where the stage's file goes in the machine while it runs (removed after). */
const WORK_DIR = '/var/tmp/lab-stage';

/** The tool's package for the image, or exit 2 saying why it cannot be installed there. */
export function toolPackage(tool: ToolKind, image: { source: string; distribution: string }, file: string): string {
  if (image.source === 'tarball') {
    throw new UsageError(
      `stage ${file}: lab cannot tell whether a tarball image can install ${tool}`,
      `use image.source debootstrap or pacstrap, or write the stage in TypeScript or shell and install ${tool} with its packages`,
    );
  }
  const name = TOOL_PACKAGES[tool][image.distribution];
  if (!name) throw new UsageError(`stage ${file}: lab knows no ${tool} package for ${image.distribution} images (it knows ${Object.keys(TOOL_PACKAGES[tool]).join(', ')})`);
  return name;
}

/** The command that applies the stage's file, and which of its exit codes mean success; `fixtures` where they are (lab validate: on the host). */
export function toolCommand(tool: ToolKind, file: string, machine: string, domain: string, fixtures = SHELL_FIXTURES): { argv: string[]; okCodes: number[] } {
  if (tool === 'puppet') {
    // --detailed-exitcodes: 0 nothing changed, 2 changes, 4 failures, 6 changes and failures.
    return { argv: ['puppet', 'apply', '--detailed-exitcodes', '--color=false', '--logdest', 'console', file], okCodes: [0, 2] };
  }
  return {
    argv: ['ansible-playbook', '-i', `${machine},`, '-c', 'local', '-e', `lab_machine=${machine}`, '-e', `lab_domain=${domain}`, '-e', `lab_fixtures=${fixtures}`, file],
    okCodes: [0],
  };
}

const quote = (arg: string) => `'${arg.replaceAll("'", `'\\''`)}'`;

export function toolStage(file: string, stage: string, image: { source: string; distribution: string }): StageDefinition {
  const tool = TOOL_EXTENSIONS[path.extname(file)]!;
  const text = readFileSync(file, 'utf8');
  const header = parseStageHeader(text, file, { onlineByDefault: true });
  const target = `${WORK_DIR}/${stage}${path.extname(file)}`;
  return {
    packages: [toolPackage(tool, image, file), ...header.packages],
    fixtures: header.fixtures,
    binds: header.binds,
    online: header.online,
    timeoutSeconds: header.timeoutSeconds,
    async run(ctx) {
      const { argv, okCodes } = toolCommand(tool, target, ctx.lab.machine.name, ctx.lab.topology.domain);
      await ctx.writeFile(target, text);
      // The tool's own exit codes decide; its whole output goes to the stage's log.
      const script = [
        `${argv.map(quote).join(' ')}`,
        'code=$?',
        `rm -rf ${WORK_DIR}`,
        `case $code in ${okCodes.join('|')}) exit 0 ;; *) echo "lab: ${tool} exited $code: the stage failed" >&2; exit 1 ;; esac`,
      ].join('\n');
      await ctx.script(script, header.fixtures, {
        LAB_MACHINE: ctx.lab.machine.name,
        LAB_STAGE: stage,
        LAB_DOMAIN: ctx.lab.topology.domain,
        LAB_FIXTURES: SHELL_FIXTURES,
        // Puppet reads FACTER_* as facts: $facts['lab_fixtures'], ...
        FACTER_lab_machine: ctx.lab.machine.name,
        FACTER_lab_domain: ctx.lab.topology.domain,
        FACTER_lab_fixtures: SHELL_FIXTURES,
        ANSIBLE_NOCOLOR: '1',
        ANSIBLE_LOCAL_TEMP: `${WORK_DIR}/ansible`,
        HOME: '/root',
      });
    },
  };
}

/**
 * A Puppet agent run against a server, for an online stage (seed 000's agents): waits for the
 * server's port within a deadline (a JVM starts slowly), then `puppet agent --test` with the
 * machine's certname; changes are success, failed resources fail the stage.
 */
export async function puppetAgent(ctx: StageContext, options: { server: string; timeoutS?: number }): Promise<void> {
  const certname = `${ctx.lab.machine.name}.${ctx.lab.topology.domain}`;
  const wait = options.timeoutS ?? 240;
  const script = [
    `deadline=$(( $(date +%s) + ${wait} ))`,
    `until timeout 2 bash -c 'exec 3<>/dev/tcp/$0/8140' ${quote(options.server)} 2>/dev/null; do`,
    `  [ "$(date +%s)" -lt "$deadline" ] || { echo "lab: ${options.server}:8140 not answering after ${wait} s" >&2; exit 1; }`,
    '  sleep 1',
    'done',
    // --maxwaitforcert: an unsigned certificate is an error after 2 minutes, never a hang.
    `puppet agent --test --color=false --server ${quote(options.server)} --certname ${quote(certname)} --waitforcert 5 --maxwaitforcert 120 --detailed-exitcodes`,
    'code=$?',
    'case $code in 0|2) exit 0 ;; *) echo "lab: puppet agent exited $code: the stage failed" >&2; exit 1 ;; esac',
  ].join('\n');
  await ctx.script(script, [], {});
}
