import readline from 'node:readline';
import repl, { type REPLServer } from 'node:repl';
import { PassThrough } from 'node:stream';
import { inspect } from 'node:util';

/** Words a machine's variable cannot be (a machine is named with lowercase letters, digits and dashes). */
const RESERVED = new Set(
  'await break case catch class const continue debugger default delete do else enum export extends false finally for function if implements import in instanceof interface let new null package private protected public return static super switch this throw true try typeof undefined var void while with yield'.split(' '),
);

/**
 * The REPL variable of each machine: its name, or for a name with dashes its camelCase
 * (web-silicon: webSilicon). A name that is a JavaScript word, or whose variable is taken (by the
 * REPL's own names or another machine's), gets none: `machines[name]` still has it.
 */
export function machineVariables(machines: readonly string[], taken: Iterable<string>): Map<string, string> {
  const used = new Set(taken);
  const variables = new Map<string, string>();
  for (const machine of machines) {
    const variable = machine.replace(/-([a-z0-9])/g, (_, next: string) => next.toUpperCase());
    if (RESERVED.has(variable) || used.has(variable) || !/^[a-z][A-Za-z0-9]*$/.test(variable)) continue;
    used.add(variable);
    variables.set(variable, machine);
  }
  return variables;
}

/** A command's output is text to read: shown as it is, not quoted; anything else as the REPL shows it. */
const writer = (colors: boolean) => (value: unknown) => (typeof value === 'string' ? value.replace(/\n$/, '') : inspect(value, { colors, depth: 4 }));

export interface ReplOptions {
  context: Record<string, unknown>;
  historyFile: string;
  banner: string;
  /** Where lines come from and results go (default: lab's own stdin and stdout). */
  input?: NodeJS.ReadableStream & { isTTY?: boolean };
  output?: NodeJS.WritableStream & { isTTY?: boolean };
}

/**
 * A Node REPL with top-level await over `context`. On a terminal: history in `historyFile`, and
 * 0 when the user leaves. Otherwise a script on stdin: each line is evaluated once the one before
 * it has finished (awaits included), results printed; the first line that fails ends it, with 1.
 */
export async function runRepl(options: ReplOptions): Promise<number> {
  const { input = process.stdin, output = process.stdout } = options;
  if (input.isTTY && output.isTTY) {
    output.write(`${options.banner}\n`);
    const server = repl.start({ prompt: 'lab> ', input, output, useGlobal: false, ignoreUndefined: true, writer: writer(true) });
    Object.assign(server.context, options.context);
    await new Promise<void>((resolve, reject) => server.setupHistory(options.historyFile, (error) => (error ? reject(error) : resolve())));
    await new Promise<void>((resolve) => server.once('exit', resolve));
    return 0;
  }
  const lines = new PassThrough();
  const server = repl.start({ prompt: '', input: lines, output, terminal: false, useGlobal: false, ignoreUndefined: true, writer: writer(false) });
  Object.assign(server.context, options.context);
  return feedScript(server, input, lines);
}

/** The REPL shows its prompt when it is ready for the next line: after a result, an error, or a line that needs more. */
async function feedScript(server: REPLServer, script: NodeJS.ReadableStream, lines: PassThrough): Promise<number> {
  let ready = () => undefined as void;
  let closed = false;
  server.once('exit', () => {
    closed = true;
    ready();
  });
  // No prompt in a script's output, not even the '...' of a line that needs more.
  server.displayPrompt = (preserveCursor?: boolean) => {
    server.setPrompt('');
    server.prompt(preserveCursor);
    ready();
  };
  const reader = readline.createInterface({ input: script, crlfDelay: Infinity });
  let failed = false;
  for await (const line of reader) {
    const lastError: unknown = server.context._error; // the REPL's last uncaught error (documented as _error)
    const done = new Promise<void>((resolve) => (ready = resolve));
    lines.write(`${line}\n`);
    await done;
    if (closed) break; // .exit
    if (server.context._error !== lastError) {
      failed = true;
      break;
    }
  }
  reader.close();
  if (!closed) {
    const exited = new Promise<void>((resolve) => server.once('exit', resolve));
    lines.end();
    await exited;
  }
  return failed ? 1 : 0;
}
