import { readFileSync } from 'node:fs';
import net from 'node:net';
import { InfraError, TimeoutError } from '../errors.js';
import { poll, SLOW } from '../wait.js';

/**
 * A vm's serial console: everything it printed since it booted is in its log file (qemu writes
 * it); text is sent to it through its socket. Scenarios wait on the log; `lab console` attaches.
 */

/** The last lines of a console log, without the terminal's control characters. */
export function consoleTail(file: string, lines = 40): string {
  try {
    return cleanConsole(readFileSync(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no console log)';
  }
}

/** Console output as text: escape sequences and carriage returns gone. */
export function cleanConsole(text: string): string {
  // CSI (ESC [ ... letter), OSC (ESC ] ... BEL), and the two-character ESC sequences.
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]|\x1b[=>c]/g, '').replace(/\r/g, '');
}

/**
 * Waits until the console log of this boot matches `pattern`; returns the matching line. Fails at
 * the deadline with the console's tail, so a scenario's report shows where the boot got to.
 */
export async function waitForConsoleText(file: string, pattern: RegExp | string, timeoutMs: number, what: string): Promise<string> {
  const regex = typeof pattern === 'string' ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : pattern;
  const matchingLine = () => {
    let text = '';
    try {
      text = cleanConsole(readFileSync(file, 'utf8'));
    } catch {
      // not written yet
    }
    // A line found, even an empty one, ends the wait.
    const line = text.split('\n').find((l) => regex.test(l));
    return line === undefined ? undefined : { line };
  };
  const found = await poll(`${what}: ${regex} on its console`, matchingLine, {
    within: timeoutMs,
    every: SLOW,
    onTimeout: () => new TimeoutError(`${what}: ${regex} not on its console within ${timeoutMs} ms; its console ends with:\n${consoleTail(file, 30)}`),
  });
  return found.line;
}

/** Types `text` on the console (through its socket); fails if nothing listens there. */
export async function sendConsole(socket: string, text: string, timeoutMs = 5000): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const connection = net.createConnection(socket);
    const timer = setTimeout(() => {
      connection.destroy();
      reject(new TimeoutError(`console ${socket}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    connection.on('error', (error) => {
      clearTimeout(timer);
      reject(new InfraError(`console ${socket}: ${error.message}`));
    });
    connection.on('connect', () => connection.end(text, () => (clearTimeout(timer), resolve())));
  });
}

/**
 * `lab console`: the terminal attached to the console until Ctrl-] (as telnet): keys go to the
 * vm, its output comes back. Returns when the console closes or the user leaves.
 */
export async function attachConsole(socket: string, input: NodeJS.ReadStream, output: NodeJS.WriteStream): Promise<void> {
  const connection = net.createConnection(socket);
  await new Promise<void>((resolve, reject) => {
    connection.once('connect', resolve);
    connection.once('error', (error) => reject(new InfraError(`console ${socket}: ${error.message}`)));
  });
  output.write('lab: attached to the console; Ctrl-] leaves\r\n');
  const raw = input.isTTY;
  if (raw) input.setRawMode(true);
  const onData = (chunk: Buffer) => {
    if (chunk.includes(0x1d)) connection.end();
    else connection.write(chunk);
  };
  input.on('data', onData);
  connection.pipe(output, { end: false });
  await new Promise<void>((resolve) => connection.once('close', () => resolve()));
  input.off('data', onData);
  if (raw) input.setRawMode(false);
  input.pause();
  output.write('\r\nlab: left the console\r\n');
}
