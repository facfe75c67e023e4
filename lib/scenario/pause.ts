import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { NORMAL, poll } from '../wait.js';

/**
 * lab test --debug: a scenario worker whose test failed asks lab test (which has the terminal) to
 * pause, through files in a directory of the run's: `<id>.json` the request, `<id>.resume` the
 * answer. The worker waits before lab's own cleanup of the test (its link faults) runs, so the lab
 * is as the test left it while the user looks.
 */
export interface PauseRequest {
  scenario: string;
  test: string;
  error: string;
  /** Machines the test used, and the command that failed (as the test wrote it) when a command's outcome failed it. */
  machines: string[];
  command?: { machine: string; line: string };
}

/** How long a pause may last: a debugging session, not a test's wait. */
export const PAUSE_LIMIT_MS = 24 * 3600_000;

/** The worker's side: the request made, then back once the user carries on. */
export async function pauseAtFailure(dir: string, request: PauseRequest): Promise<void> {
  const id = `${process.pid}-${Date.now()}`;
  const file = path.join(dir, `${id}.json`);
  writeFileSync(`${file}.partial`, JSON.stringify(request));
  renameSync(`${file}.partial`, file);
  await poll('the user to carry on (Enter in lab test --debug)', () => existsSync(path.join(dir, `${id}.resume`)), { within: PAUSE_LIMIT_MS, every: NORMAL });
}

/** How to reach a failed test's lab, as the user types it. */
export function pauseMessage(request: PauseRequest, lab: string): string {
  const used = request.machines.length ? request.machines : ['<machine>'];
  const quote = (word: string) => (/^[\w./:=@%+-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`);
  return [
    '',
    `lab test --debug: ${request.scenario} > ${request.test} failed:`,
    ...request.error.split('\n').slice(0, 8).map((line) => `  ${line}`),
    '',
    'The lab is as the test left it. Get in with:',
    ...used.map((machine) => `  ${lab} shell ${machine}`),
    `  ${lab} repl`,
    ...(request.command ? [`  ${lab} exec ${request.command.machine} -- sh -c ${quote(request.command.line)}   (the command that failed)`] : []),
    'Enter carries on; Ctrl-C stops here and leaves the lab running.',
    '',
  ].join('\n');
}

/**
 * lab test's side: each request, one at a time, shown on the terminal; the worker is told to
 * carry on when the user presses Enter. Stopped with `close()` once the scenarios have run.
 */
export class PauseDesk {
  private readonly served = new Set<string>();
  private readonly lines = createInterface({ input: process.stdin });
  private readonly enter: (() => void)[] = [];
  private busy = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly dir: string,
    private readonly lab: string,
    private readonly write: (text: string) => void = (text) => process.stderr.write(text),
  ) {
    this.lines.on('line', () => this.enter.shift()?.());
    this.timer = setInterval(() => void this.serve(), NORMAL);
  }

  close(): void {
    clearInterval(this.timer);
    this.lines.close();
  }

  private async serve(): Promise<void> {
    if (this.busy) return;
    const next = readdirSync(this.dir).find((f) => f.endsWith('.json') && !this.served.has(f));
    if (!next) return;
    this.busy = true;
    this.served.add(next);
    const request = JSON.parse(readFileSync(path.join(this.dir, next), 'utf8')) as PauseRequest;
    this.write(pauseMessage(request, this.lab));
    await new Promise<void>((resolve) => this.enter.push(resolve));
    writeFileSync(path.join(this.dir, next.replace(/\.json$/, '.resume')), '');
    this.busy = false;
  }
}
