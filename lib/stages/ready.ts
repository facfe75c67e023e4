import { isIP } from 'node:net';
import { UsageError } from '../errors.js';
import type { Machine } from '../machine-verbs.js';

/**
 * What tells that a stage's service is up once its machine has booted, declared in a stage file's
 * header: `# lab: ready=unit:haproxy`, `ready=port:80` (or `port:10.0.0.1:80`), `ready=cmd:curl -fs
 * http://localhost/` (the rest of the line, run by /bin/sh). One check a line; several lines, all must hold.
 */
export type ReadyCheck = { unit: string } | { port: number; address: string } | { command: string };

export const READY_FORMS = 'unit:<unit>, port:[<address>:]<port> or cmd:<command>';

/** One `ready=` value; a bad one is a usage error naming `where` (the stage file and line). */
export function parseReadyCheck(value: string, where: string): ReadyCheck {
  const match = /^(unit|port|cmd):(.*)$/.exec(value.trim());
  const bad = (why: string) => new UsageError(`${where}: ready: '${value.trim()}' ${why}`, `write ready=${READY_FORMS}`);
  if (!match) throw bad('is not a check lab knows');
  const [, kind, rest] = match as unknown as [string, 'unit' | 'port' | 'cmd', string];
  const argument = rest.trim();
  if (kind === 'cmd') {
    if (!argument) throw bad('names no command');
    return { command: argument };
  }
  if (kind === 'unit') {
    if (!/^[\w@.:\\-]+$/.test(argument)) throw bad('is not one systemd unit name');
    return { unit: argument };
  }
  const split = argument.lastIndexOf(':');
  const address = split < 0 ? '127.0.0.1' : argument.slice(0, split);
  const port = Number(split < 0 ? argument : argument.slice(split + 1));
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad('has no TCP port from 1 to 65535');
  if (isIP(address) !== 4) throw bad(`has '${address}', not an IPv4 address`);
  return { port, address };
}

/** Waits until every check holds in the booted machine, each within `timeoutMs`; fails (AssertionFailure) saying which did not. */
export async function waitReady(machine: Machine, checks: readonly ReadyCheck[], timeoutMs: number): Promise<void> {
  for (const check of checks) {
    if ('unit' in check) await machine.waitForUnit(check.unit, timeoutMs);
    else if ('port' in check) await machine.waitForOpenPort(check.port, check.address, timeoutMs);
    else await machine.waitUntilSucceeds(check.command, timeoutMs);
  }
}
