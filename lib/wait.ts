import { TimeoutError, UsageError } from './errors.js';

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** How often a wait tries again: kernel and /proc reads, files and process liveness (cheap). */
export const FAST = 10;
/** Commands on the host (ip, machinectl), and a machine's systemd asked while it boots. */
export const NORMAL = 25;
/** Commands inside machines (a scenario's waits), whole console logs, the lab's lock, a machine's start again. */
export const SLOW = 100;

type Falsy = false | 0 | '' | null | undefined;

export interface PollOptions {
  /** Milliseconds until the last try. */
  within: number;
  /** Milliseconds between tries: FAST, NORMAL or SLOW. */
  every: number;
}

/**
 * Tries `probe` until it returns a truthy value, and returns that value. A probe that throws ends
 * the wait at once with its error. At the deadline one last try is made; then it fails with a
 * TimeoutError naming `what` and the time, or with `onTimeout`'s error where the caller can say
 * more (a console's tail, who holds a lock). Never a fixed sleep: it returns as soon as the
 * condition holds.
 */
export async function poll<T>(
  what: string,
  probe: () => T | Promise<T>,
  options: PollOptions & { onTimeout?: () => Error | Promise<Error> },
): Promise<Exclude<T, Falsy>> {
  const value = await tryUntil(probe, options);
  if (value !== undefined) return value;
  throw options.onTimeout ? await options.onTimeout() : new TimeoutError(`timed out after ${options.within} ms waiting for ${what}`);
}

/** `poll` for a wait whose deadline is no failure (the caller goes on another way): whether the probe held in time. */
export async function holdsWithin(probe: () => unknown, options: PollOptions): Promise<boolean> {
  return (await tryUntil(probe, options)) !== undefined;
}

/** The probe's first truthy value; undefined when the try made at the deadline was falsy too. */
async function tryUntil<T>(probe: () => T | Promise<T>, { within, every }: PollOptions): Promise<Exclude<T, Falsy> | undefined> {
  const deadline = Date.now() + within;
  for (;;) {
    const value = await probe();
    if (value) return value as Exclude<T, Falsy>;
    const remaining = deadline - Date.now();
    if (remaining <= 0) return undefined;
    await delay(Math.min(every, remaining));
  }
}

/** At most `slots` holders at a time; the others queue by priority (lower first), then in order. */
export class Semaphore {
  private readonly queue: { priority: number; resume: () => void }[] = [];

  constructor(private slots: number) {}

  async acquire(priority = 0): Promise<() => void> {
    if (this.slots > 0) this.slots--;
    else {
      await new Promise<void>((resume) => {
        const at = this.queue.findIndex((waiting) => waiting.priority > priority);
        this.queue.splice(at < 0 ? this.queue.length : at, 0, { priority, resume });
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.queue.shift();
      if (next) next.resume();
      else this.slots++;
    };
  }
}

/** "500ms", "10s", "2m", "1h", or a number of seconds. */
export function parseDuration(text: string, field: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new UsageError(`${field}: '${text}' is not a duration (like 500ms, 10s, 2m, 1h)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? 's']!;
  const ms = Number(match[1]) * unit;
  if (ms < 1 || ms > 7 * 24 * 3_600_000) throw new UsageError(`${field}: ${text} is out of range (1ms to 7 days)`);
  return ms;
}
