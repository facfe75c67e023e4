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
