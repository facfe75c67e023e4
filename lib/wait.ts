import { LabError } from './errors.js';

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Polls a real condition until it holds, or fails after `timeoutMs` saying what was awaited.
 * Never a fixed sleep: it returns as soon as the condition is true.
 */
export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new LabError(`timed out after ${timeoutMs} ms waiting for ${what}`, 1);
    await delay(intervalMs);
  }
}

/** At most `slots` holders at a time; the others queue in order. */
export class Semaphore {
  private readonly queue: (() => void)[] = [];

  constructor(private slots: number) {}

  async acquire(): Promise<() => void> {
    if (this.slots > 0) this.slots--;
    else await new Promise<void>((resolve) => this.queue.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.queue.shift();
      if (next) next();
      else this.slots++;
    };
  }
}
