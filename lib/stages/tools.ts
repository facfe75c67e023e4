import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { run } from '../exec.js';
import { treeHash } from './content.js';
import type { LabView, StageContext, StageDefinition } from './define.js';
import { headerDefinition, parseStageHeader, SHELL_FIXTURES } from './shell.js';

/**
 * Stages written for a configuration tool, applied inside their machine by the tool itself:
 * `<stage>.pp` with `puppet apply`, `<stage>.yml` with `ansible-playbook` on the machine as
 * localhost. The tool is installed in the machine from the image's mirror (a package of the
 * stage), so the host needs neither. They run online (booted: services start, as with a real
 * agent) unless the file says `# lab: offline`. A failed resource or task fails the stage. What a
 * team keeps beside its config for the tool (roles, collections, ansible.cfg; modules, hiera) is
 * copied beside the stage's file in the machine, and its content is part of the stage's key.
 */

export type ToolKind = 'puppet' | 'ansible';

export const TOOL_EXTENSIONS: Record<string, ToolKind> = { '.pp': 'puppet', '.yml': 'ansible', '.yaml': 'ansible' };

/** The packages of each tool, per distribution of the image: Ansible's apt and package modules need python3-apt. */
const TOOL_PACKAGES: Record<ToolKind, Record<string, string[]>> = {
  puppet: { debian: ['puppet-agent'], ubuntu: ['puppet'], arch: ['puppet'] },
  ansible: { debian: ['ansible-core', 'python3-apt'], ubuntu: ['ansible-core', 'python3-apt'], arch: ['ansible-core'] },
};

/** What each tool reads beside the lab's config, as a team's repository has it (roles/ is narrowed to the roles the playbook uses). */
const TEAM_CONTENT: Record<ToolKind, readonly string[]> = {
  ansible: ['ansible.cfg', 'roles', 'collections'],
  puppet: ['modules', 'hiera.yaml', 'data'],
};

/** Where the stage's file and the team's content go in the machine while it runs (removed after). */
export const WORK_DIR = '/var/tmp/lab-stage';

/** The tool's packages for the image, or exit 2 saying why they cannot be installed there. */
export function toolPackages(tool: ToolKind, image: { source: string; distribution: string }, file: string): string[] {
  if (image.source === 'tarball') {
    throw new UsageError(
      `stage ${file}: lab cannot tell whether a tarball image can install ${tool}`,
      `use image.source debootstrap or pacstrap, or write the stage in TypeScript or shell and install ${tool} with its packages`,
    );
  }
  const names = TOOL_PACKAGES[tool][image.distribution];
  if (!names) throw new UsageError(`stage ${file}: lab knows no ${tool} package for ${image.distribution} images (it knows ${Object.keys(TOOL_PACKAGES[tool]).join(', ')})`);
  return names;
}

/**
 * The team's content a stage's tool reads, relative to the config's directory: what of TEAM_CONTENT
 * is there, with `roles/` narrowed to the roles the playbook uses (and their dependencies, found as
 * for a controller's play): an edited role rebuilds only the stages that use it.
 */
export async function teamContent(tool: ToolKind, file: string, configDir: string | undefined, what: string): Promise<string[]> {
  if (!configDir) return [];
  const present = presentContent(tool, configDir);
  if (tool !== 'ansible' || !present.includes('roles')) return present;
  // The YAML parser, only for a lab whose playbooks have roles to find.
  const { playbookReads } = await import('../controller/playbook.js');
  const roles = playbookReads(file, what, path.join(configDir, 'roles')).roles.map((dir) => path.relative(configDir, dir));
  return [...present.filter((entry) => entry !== 'roles'), ...roles].sort();
}

const presentContent = (tool: ToolKind, configDir: string) => TEAM_CONTENT[tool].filter((entry) => existsSync(path.join(configDir, entry)));
const contentHashes = (configDir: string, entries: readonly string[]) => Object.fromEntries(entries.map((entry) => [entry, treeHash(path.join(configDir, entry))]));

/** Unpacks the team's content into `dir` of the machine, replacing what was there (through the machine: tar in it). */
async function unpackContent(ctx: StageContext, configDir: string, entries: readonly string[], dir: string): Promise<void> {
  const unpack = `rm -rf ${dir} && mkdir -p ${dir} && base64 -d | tar -xzf - -C ${dir} --no-same-owner`;
  await ctx.exec(['sh', '-c', unpack], { input: await contentArchive(configDir, entries) });
}

/** Where a Puppet server stage puts the team's modules/, hiera.yaml and data/: its code directory may be a read-only bind. */
export const PUPPET_SERVER_CONTENT = '/etc/puppet/team';

/**
 * The team's Puppet content beside the config (modules/, hiera.yaml, data/), each entry's tree
 * hash: what a Puppet server stage returns from `inputs`, so that an edited module rebuilds it.
 */
export function puppetServerInputs(lab: LabView): Record<string, string> {
  return lab.configDir ? contentHashes(lab.configDir, presentContent('puppet', lab.configDir)) : {};
}

/**
 * Serves the team's Puppet content from a Puppet server (in its stage's `run`, after its
 * puppet.conf is written): copied under PUPPET_SERVER_CONTENT, its modules first in the server's
 * basemodulepath (an environment's own modules/ still comes before), its hiera.yaml the global
 * hierarchy (its datadir relative to it: data/). Nothing beside the config, nothing done.
 */
export async function servePuppetContent(ctx: StageContext): Promise<void> {
  const configDir = ctx.lab.configDir;
  const entries = configDir ? presentContent('puppet', configDir) : [];
  if (!configDir || entries.length === 0) return;
  await unpackContent(ctx, configDir, entries, PUPPET_SERVER_CONTENT);
  const set = (setting: string, value: string) => ctx.exec(['puppet', 'config', 'set', '--section', 'server', setting, value]);
  if (entries.includes('modules')) await set('basemodulepath', `${PUPPET_SERVER_CONTENT}/modules:$codedir/modules:/usr/share/puppet/modules`);
  if (entries.includes('hiera.yaml')) await set('hiera_config', `${PUPPET_SERVER_CONTENT}/hiera.yaml`);
}

/**
 * The command that applies the stage's file with the team's content present (see teamContent), and
 * which of its exit codes mean success; `fixtures` where they are (lab validate: on the host).
 */
export function toolCommand(tool: ToolKind, file: string, machine: string, domain: string, content: readonly string[] = [], fixtures = SHELL_FIXTURES): { argv: string[]; env: Record<string, string>; okCodes: number[] } {
  const has = (entry: string) => content.includes(entry);
  if (tool === 'puppet') {
    // --detailed-exitcodes: 0 nothing changed, 2 changes, 4 failures, 6 changes and failures.
    // Puppet fills in $basemodulepath itself: the team's modules come first, the system's (Debian's puppet-module-*) after.
    const options = [...(has('modules') ? [`--modulepath=${WORK_DIR}/modules:$basemodulepath`] : []), ...(has('hiera.yaml') ? [`--hiera_config=${WORK_DIR}/hiera.yaml`] : [])];
    return { argv: ['puppet', 'apply', '--detailed-exitcodes', '--color=false', '--logdest', 'console', ...options, file], env: {}, okCodes: [0, 2] };
  }
  return {
    // Roles and collections sit beside the playbook, where Ansible looks for them first; ansible.cfg is named.
    argv: ['ansible-playbook', '-i', `${machine},`, '-c', 'local', '-e', `lab_machine=${machine}`, '-e', `lab_domain=${domain}`, '-e', `lab_fixtures=${fixtures}`, file],
    env: has('ansible.cfg') ? { ANSIBLE_CONFIG: `${WORK_DIR}/ansible.cfg` } : {},
    okCodes: [0],
  };
}

const quote = (arg: string) => `'${arg.replaceAll("'", `'\\''`)}'`;

/** The team's content, as a base64 tarball (links kept as links, .git left out: what treeHash hashes), to unpack in the machine. */
async function contentArchive(configDir: string, entries: readonly string[]): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lab-team-content-'));
  try {
    const archive = path.join(dir, 'content.tar.gz');
    await run(['tar', '-czf', archive, '--exclude=.git', '-C', configDir, '--', ...entries]);
    return readFileSync(archive).toString('base64');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function toolStage(file: string, stage: string, image: { source: string; distribution: string }, configDir?: string): Promise<StageDefinition> {
  const tool = TOOL_EXTENSIONS[path.extname(file)]!;
  const text = readFileSync(file, 'utf8');
  const header = parseStageHeader(text, file, { onlineByDefault: true });
  const target = `${WORK_DIR}/${stage}${path.extname(file)}`;
  const content = await teamContent(tool, file, configDir, `stage ${file}`);
  const hashes = configDir ? contentHashes(configDir, content) : {};
  return {
    ...headerDefinition(header),
    packages: [...toolPackages(tool, image, file), ...header.packages],
    inputs: () => ({ teamContent: hashes }),
    async run(ctx) {
      const { argv, env, okCodes } = toolCommand(tool, target, ctx.lab.machine.name, ctx.lab.topology.domain, content);
      // Through the machine, as an online stage's root is the running machine's.
      if (content.length) await unpackContent(ctx, configDir!, content, WORK_DIR);
      await ctx.writeFile(target, text);
      // The tool's own exit codes decide; its whole output goes to the stage's log.
      const script = [
        `cd ${WORK_DIR}`,
        `${argv.map(quote).join(' ')}`,
        'code=$?',
        'cd /',
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
        ...env,
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
