import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';
import { parseDuration } from '../wait.js';
import type { StageDefinition } from './define.js';
import { parseReadyCheck, type ReadyCheck, READY_FORMS, waitReady } from './ready.js';

/** The header keys a stage file (shell, Puppet, Ansible) may declare, as `# lab: key=value` (or `# lab: online`, `# lab: offline`). */
export const SHELL_HEADER_KEYS = ['packages', 'fixtures', 'binds', 'online', 'offline', 'timeout', 'ready'] as const;

export interface ShellHeader {
  packages: string[];
  fixtures: string[];
  binds: string[];
  online: boolean;
  /** `# lab: timeout=30m`: the script's deadline. */
  timeoutSeconds?: number;
  /** `# lab: ready=unit:haproxy` (a line each): what must hold once the machine has booted. */
  ready: ReadyCheck[];
}

const EXAMPLE_VALUES: Record<string, string> = { timeout: '30m', ready: READY_FORMS };

/**
 * Reads the `# lab:` lines at the top of a stage file (after the #! line, before the first line
 * that is not a comment). An unknown key is a usage error naming it and the known ones. Shell
 * stages run offline unless `online`; tool stages (.pp, .yml) online unless `offline`.
 */
export function parseStageHeader(text: string, file: string, options: { onlineByDefault?: boolean } = {}): ShellHeader {
  const header: ShellHeader = { packages: [], fixtures: [], binds: [], online: options.onlineByDefault ?? false, ready: [] };
  for (const [index, line] of text.split('\n').entries()) {
    if (index === 0 && line.startsWith('#!')) continue;
    if (!line.startsWith('#')) break;
    const match = /^#\s*lab:\s*([a-z]+)(?:=(.*))?$/.exec(line.trim());
    if (!match) continue;
    const [, key, value] = match;
    if (!(SHELL_HEADER_KEYS as readonly string[]).includes(key!)) {
      throw new UsageError(`stage ${file}:${index + 1}: unknown header key '${key}' (known: ${SHELL_HEADER_KEYS.join(', ')})`);
    }
    if (key === 'online' || key === 'offline') {
      if (value !== undefined) throw new UsageError(`stage ${file}:${index + 1}: '${key}' takes no value (# lab: ${key})`);
      header.online = key === 'online';
    } else {
      if (value === undefined || value.trim() === '') throw new UsageError(`stage ${file}:${index + 1}: '${key}' needs a value (# lab: ${key}=${EXAMPLE_VALUES[key] ?? 'a b c'})`);
      if (key === 'ready') header.ready.push(parseReadyCheck(value, `stage ${file}:${index + 1}`));
      else if (key === 'timeout') header.timeoutSeconds = parseDuration(value, `stage ${file}:${index + 1}: timeout`) / 1000;
      else header[key as 'packages' | 'fixtures' | 'binds'].push(...value.trim().split(/\s+/));
    }
  }
  return header;
}

/** The header's part of a stage definition, shared by shell and tool stages. */
export function headerDefinition(header: ShellHeader): StageDefinition {
  return {
    fixtures: header.fixtures,
    binds: header.binds,
    online: header.online,
    timeoutSeconds: header.timeoutSeconds,
    ...(header.ready.length ? { ready: (machine, _lab, timeoutMs) => waitReady(machine, header.ready, timeoutMs) } : {}),
  };
}

/** Where a shell stage finds what it declared, inside the machine. */
export const SHELL_FIXTURES = '/run/lab-stage/fixtures';

/**
 * A shell stage as a stage definition: the script runs in the machine with /bin/sh, offline in its
 * root or online in the booted machine, with its fixtures under $LAB_FIXTURES and LAB_MACHINE,
 * LAB_STAGE, LAB_DOMAIN set. Its content is its key (the file is hashed like any stage module).
 */
export function shellStage(file: string, stage: string): StageDefinition {
  const script = readFileSync(file, 'utf8');
  const header = parseStageHeader(script, file);
  return {
    ...headerDefinition(header),
    packages: header.packages,
    async run(ctx) {
      const env = { LAB_MACHINE: ctx.lab.machine.name, LAB_STAGE: stage, LAB_DOMAIN: ctx.lab.topology.domain, LAB_FIXTURES: SHELL_FIXTURES };
      await ctx.script(script, header.fixtures, env);
    },
  };
}
