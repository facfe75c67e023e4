import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from '../exec.js';
import { findCommand } from '../host/prereq.js';
import type { Problem } from './problem.js';

/**
 * A stage file's syntax, checked on the host by the tool that reads it, when the host has that tool:
 * shell with `sh -n` (and shellcheck), playbooks with `ansible-playbook --syntax-check`, manifests
 * with `puppet parser validate`. Nothing runs the file; what a tool would write (Ansible's and
 * Puppet's own directories) goes to a scratch directory that is removed after.
 */

/** Each check's command, as `lab validate` names it, and the command that must be on PATH for it. */
export const SYNTAX_TOOLS = {
  sh: { shown: 'sh -n', command: 'sh' },
  shellcheck: { shown: 'shellcheck', command: 'shellcheck' },
  ansible: { shown: 'ansible-playbook --syntax-check', command: 'ansible-playbook' },
  puppet: { shown: 'puppet parser validate', command: 'puppet' },
} as const;
export type SyntaxTool = keyof typeof SYNTAX_TOOLS;

export const hasTool = (tool: SyntaxTool) => findCommand(SYNTAX_TOOLS[tool].command) !== undefined;

const TIMEOUT_MS = 60_000;

async function inScratch<T>(use: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lab-validate-'));
  try {
    return await use(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `sh -n` (lab runs shell stages with /bin/sh), then shellcheck for sh at warning level and above, where installed. */
export async function shellProblems(file: string): Promise<Problem[]> {
  const syntax = await run(['sh', '-n', file], { allowFailure: true, timeout: TIMEOUT_MS });
  const problems = syntax.exitCode === 0 ? [] : parseShellSyntax(syntax.stderr, file);
  if (!hasTool('shellcheck')) return problems;
  const lint = await run(['shellcheck', '--format=gcc', '--shell=sh', '--severity=warning', file], { allowFailure: true, timeout: TIMEOUT_MS });
  return [...problems, ...parseShellcheck(lint.stdout)];
}

/** dash's `file: 4: Syntax error: ...` (bash's `file: line 4: ...`), one problem a line. */
export function parseShellSyntax(output: string, file: string): Problem[] {
  const lines = output.split('\n').filter((l) => l.trim());
  return lines.map((line) => {
    const match = /^.*?: (?:line )?(\d+): (.*)$/.exec(line);
    return match ? { file, line: Number(match[1]), message: match[2]! } : { file, message: line };
  });
}

/** shellcheck's gcc format: `file:line:column: warning: message [SC2086]`. */
export function parseShellcheck(output: string): Problem[] {
  return output.split('\n').flatMap((line) => {
    const match = /^(.+?):(\d+):(\d+): (.*)$/.exec(line);
    return match ? [{ file: match[1]!, line: Number(match[2]), column: Number(match[3]), message: `shellcheck ${match[4]!}` }] : [];
  });
}

/**
 * `ansible-playbook --syntax-check` with the argv that would run the playbook (its inventories, its
 * variables), from `cwd` (where its ansible.cfg is). Ansible's home and temporary files are in a
 * scratch directory, where `argv` may write what it names (an inventory).
 */
export async function playbookProblems(argv: (scratch: string) => readonly string[], file: string, options: { cwd: string; env?: Record<string, string> }): Promise<Problem[]> {
  return inScratch(async (home) => {
    const result = await run([...argv(home), '--syntax-check'], {
      allowFailure: true,
      timeout: TIMEOUT_MS,
      cwd: options.cwd,
      env: { ANSIBLE_HOME: home, ANSIBLE_LOCAL_TEMP: path.join(home, 'tmp'), ANSIBLE_NOCOLOR: '1', ANSIBLE_RETRY_FILES_ENABLED: 'False', ...options.env },
    });
    return result.exitCode === 0 ? [] : [parseAnsibleError(`${result.stderr}\n${result.stdout}`, file)];
  });
}

/** Ansible's `ERROR! ...` paragraphs, and where "the error appears to be" when it says. */
export function parseAnsibleError(output: string, file: string): Problem {
  const at = /The error appears to be in '(.+?)': line (\d+), column (\d+)/.exec(output);
  const before = (at ? output.slice(0, at.index) : output).split('\n').map((l) => l.trim()).filter(Boolean);
  const message = before.join(' ').replace(/^ERROR! /, '') || 'ansible-playbook --syntax-check failed';
  return at ? { file: at[1]!, line: Number(at[2]), column: Number(at[3]), message } : { file, message };
}

/** `puppet parser validate`, with Puppet's directories (which it would make under /etc or ~) in scratch. */
export async function manifestProblems(file: string): Promise<Problem[]> {
  return inScratch(async (dir) => {
    const dirs = ['confdir', 'vardir', 'codedir', 'logdir', 'rundir'].flatMap((name) => [`--${name}`, path.join(dir, name)]);
    const result = await run(['puppet', 'parser', 'validate', '--color=false', ...dirs, file], { allowFailure: true, timeout: TIMEOUT_MS, env: { HOME: dir } });
    return result.exitCode === 0 ? [] : parsePuppetErrors(`${result.stderr}\n${result.stdout}`, file);
  });
}

/** Puppet's `Error: ... (file: x.pp, line: 3, column: 1)` (or `... at x.pp:3:1`), one problem an error. */
export function parsePuppetErrors(output: string, file: string): Problem[] {
  const errors = output.split('\n').filter((l) => l.startsWith('Error: '));
  if (errors.length === 0) return [{ file, message: output.trim() || 'puppet parser validate failed' }];
  return errors.map((line) => {
    const text = line.slice('Error: '.length);
    const match = /^(.*?) \(file: (.+?), line: (\d+), column: (\d+)\)$/.exec(text) ?? /^(.*?) at (\/\S+?):(\d+):(\d+)$/.exec(text);
    return match ? { file: match[2]!, line: Number(match[3]), column: Number(match[4]), message: match[1]! } : { file, message: text };
  });
}
