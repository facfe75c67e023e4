import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { UsageError } from '../errors.js';

/**
 * What a playbook reads, found by reading it as Ansible would: the playbooks it imports, the
 * roles its plays and tasks name (with their dependencies), and everything else in its directory
 * (inventory, group and host vars, ansible.cfg, vars files, library), but not the other
 * playbooks there nor the roles it does not use. So a role edited for the web play changes the
 * web play's key and never the gw play's.
 */
export interface PlaybookReads {
  /** Files and directories whose content the play depends on, absolute, sorted. */
  paths: string[];
  /** The directories of the roles it uses (or the roles directory whole, when a role's name is a template). */
  roles: string[];
  /** Every play's `hosts` pattern, imports included. */
  hosts: string[];
}

const ROLE_ACTIONS = ['include_role', 'import_role', 'ansible.builtin.include_role', 'ansible.builtin.import_role'];
const IMPORT_ACTIONS = ['import_playbook', 'ansible.builtin.import_playbook'];
const TASK_LISTS = ['tasks', 'pre_tasks', 'post_tasks', 'handlers', 'block', 'rescue', 'always'];

type Yaml = Record<string, unknown>;

/**
 * Each file parsed once per process (by its text): the playbooks of a directory are read by every
 * controller stage whose play lives there, to tell them from the rest of its content.
 */
const parsed = new Map<string, { text: string; value: unknown } | { text: string; error: Error }>();

function parseOnce(file: string): unknown {
  const text = readFileSync(file, 'utf8');
  let entry = parsed.get(file);
  if (entry?.text !== text) {
    try {
      entry = { text, value: parse(text) };
    } catch (error) {
      entry = { text, error: error as Error };
    }
    parsed.set(file, entry);
  }
  if ('error' in entry) throw entry.error;
  return entry.value;
}

function readYaml(file: string, what: string): unknown {
  try {
    return parseOnce(file);
  } catch (error) {
    throw new UsageError(`${what}: ${file} is not valid YAML: ${(error as Error).message.split('\n')[0]}`);
  }
}

const isObject = (v: unknown): v is Yaml => v !== null && typeof v === 'object' && !Array.isArray(v);
const templated = (name: string) => name.includes('{{');

/** A role named in a `roles:` list or a role dependency: `name`, `{ role: name }` or `{ name: name }`. */
function roleName(entry: unknown): string | undefined {
  if (typeof entry === 'string') return entry;
  if (isObject(entry)) return (entry.role ?? entry.name) as string | undefined;
  return undefined;
}

/** Is this YAML file a playbook (a list of plays or imports)? */
export function isPlaybook(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0 && value.every((p) => isObject(p) && ('hosts' in p || IMPORT_ACTIONS.some((a) => a in p)));
}

/** `rolesDir`: where its roles are, by default `roles/` beside it (a tool stage's are beside the lab's config). */
export function playbookReads(playbook: string, what: string, rolesDir = path.join(path.dirname(playbook), 'roles')): PlaybookReads {
  const dir = path.dirname(playbook);
  const playbooks = new Set<string>();
  const roles = new Set<string>();
  const hosts: string[] = [];
  const extra = new Set<string>();
  let allRoles = false; // a role named by a template: which one cannot be known, so every role counts

  const addRole = (name: string | undefined) => {
    if (!name) return;
    if (templated(name)) return void (allRoles = true);
    const roleDir = path.join(rolesDir, name);
    if (roles.has(name) || !existsSync(roleDir)) return; // a role from a collection or the system is not the team's content
    roles.add(name);
    const meta = ['main.yml', 'main.yaml'].map((f) => path.join(roleDir, 'meta', f)).find(existsSync);
    const dependencies = meta ? (readYaml(meta, what) as Yaml | null)?.dependencies : undefined;
    if (Array.isArray(dependencies)) for (const d of dependencies) addRole(roleName(d));
    for (const sub of ['tasks', 'handlers']) {
      const subDir = path.join(roleDir, sub);
      if (!existsSync(subDir)) continue;
      for (const file of readdirSync(subDir).filter((f) => /\.ya?ml$/.test(f))) scanTasks(readYaml(path.join(subDir, file), what));
    }
  };
  const scanTasks = (tasks: unknown) => {
    if (!Array.isArray(tasks)) return;
    for (const task of tasks) {
      if (!isObject(task)) continue;
      for (const action of ROLE_ACTIONS) {
        const args = task[action];
        if (isObject(args)) addRole(args.name as string | undefined);
        else if (typeof args === 'string') addRole(/(?:^|\s)name=(\S+)/.exec(args)?.[1]);
      }
      for (const list of TASK_LISTS) scanTasks(task[list]);
    }
  };
  const addPlaybook = (file: string) => {
    if (playbooks.has(file)) return;
    if (!existsSync(file)) throw new UsageError(`${what}: ${file} does not exist`);
    playbooks.add(file);
    const plays = readYaml(file, what);
    if (!Array.isArray(plays)) throw new UsageError(`${what}: ${file} is not a playbook (a list of plays)`);
    for (const play of plays) {
      if (!isObject(play)) continue;
      for (const action of IMPORT_ACTIONS) if (typeof play[action] === 'string') addPlaybook(path.resolve(path.dirname(file), play[action] as string));
      const pattern = play.hosts;
      if (typeof pattern === 'string') hosts.push(pattern);
      else if (Array.isArray(pattern)) hosts.push(pattern.join(','));
      if (Array.isArray(play.roles)) for (const role of play.roles) addRole(roleName(role));
      for (const list of TASK_LISTS) scanTasks(play[list]);
      const varsFiles = typeof play.vars_files === 'string' ? [play.vars_files] : Array.isArray(play.vars_files) ? play.vars_files : [];
      for (const vars of varsFiles) if (typeof vars === 'string' && !templated(vars)) extra.add(path.resolve(path.dirname(file), vars));
    }
  };
  addPlaybook(playbook);

  // The rest of the playbook's directory: all but roles/ and the playbooks this one does not import.
  const rest: string[] = [];
  for (const entry of readdirSync(dir)) {
    const full = path.join(dir, entry);
    if (entry === '.git' || entry === 'roles' || playbooks.has(full)) continue;
    if (/\.ya?ml$/.test(entry) && statSync(full).isFile() && !extra.has(full) && isPlaybookFile(full)) continue;
    rest.push(full);
  }
  const roleDirs = allRoles ? (existsSync(rolesDir) ? [rolesDir] : []) : [...roles].map((r) => path.join(rolesDir, r));
  return { paths: [...new Set([...playbooks, ...roleDirs, ...rest, ...[...extra].filter(existsSync)])].sort(), roles: roleDirs.sort(), hosts };
}

function isPlaybookFile(file: string): boolean {
  try {
    return isPlaybook(parseOnce(file));
  } catch {
    return false;
  }
}
