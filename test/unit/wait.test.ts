import { describe, expect, it } from 'vitest';
import { AssertionFailure, EXIT, InfraError, TimeoutError } from '../../lib/errors.js';
import { holdsWithin, poll, Semaphore } from '../../lib/wait.js';

describe('poll', () => {
  it("returns the probe's first truthy value, without waiting once it holds", async () => {
    let tries = 0;
    const started = Date.now();
    expect(await poll('a value', () => (++tries < 3 ? undefined : { tries }), { within: 5000, every: 1 })).toEqual({ tries: 3 });
    expect(await poll('at once', () => 'ready', { within: 5000, every: 10_000 })).toBe('ready');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('makes a last try at the deadline', async () => {
    const started = Date.now();
    const triedAt: number[] = [];
    // Apart by more than the time allowed: only the first try and the one at the deadline fit.
    const value = await poll('the second try', () => triedAt.push(Date.now() - started) === 2 && 'second', { within: 200, every: 60_000 });
    expect(value).toBe('second');
    expect(triedAt).toHaveLength(2);
    expect(triedAt[1]).toBeGreaterThanOrEqual(190);
  });

  it('tries once when given no time, and fails then', async () => {
    let tries = 0;
    await expect(poll('nothing', () => void tries++, { within: 0, every: 10 })).rejects.toBeInstanceOf(TimeoutError);
    expect(tries).toBe(1);
  });

  it('fails at once with the error of a probe that throws', async () => {
    let tries = 0;
    const started = Date.now();
    const failing = () => {
      tries++;
      throw new AssertionFailure('the probe saw it fail');
    };
    await expect(poll('a failing probe', failing, { within: 10_000, every: 10 })).rejects.toThrow('the probe saw it fail');
    expect(tries).toBe(1);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('times out as an infrastructure error (exit 4) naming what it waited for and how long', async () => {
    const error = await poll('the moon to turn blue', () => false, { within: 30, every: 10 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toBeInstanceOf(InfraError);
    expect((error as TimeoutError).exitCode).toBe(EXIT.INFRA);
    expect(EXIT.INFRA).toBe(4);
    expect((error as Error).message).toBe('timed out after 30 ms waiting for the moon to turn blue');
  });

  it("fails with the caller's own error at the deadline, when it gives one", async () => {
    const own = new AssertionFailure('unit doomed.service is activating after 30 ms');
    await expect(poll('a unit', () => false, { within: 30, every: 10, onTimeout: async () => own })).rejects.toBe(own);
  });
});

describe('holdsWithin', () => {
  it('says whether the probe held in time, without failing', async () => {
    let tries = 0;
    expect(await holdsWithin(() => ++tries === 2, { within: 1000, every: 1 })).toBe(true);
    expect(await holdsWithin(() => false, { within: 20, every: 5 })).toBe(false);
  });
});

describe('exit codes', () => {
  it('keep failure kinds apart', () => {
    expect(new AssertionFailure('x').exitCode).toBe(EXIT.FAILED);
    expect(new InfraError('x').exitCode).toBe(EXIT.INFRA);
    expect([EXIT.FAILED, EXIT.USAGE, EXIT.HOST, EXIT.INFRA]).toEqual([1, 2, 3, 4]);
  });
});

describe('Semaphore', () => {
  it('gives freed slots to the waiting holder of lowest priority first, in order among equals', async () => {
    const slots = new Semaphore(1);
    const first = await slots.acquire();
    const order: string[] = [];
    const waiting = [
      slots.acquire(1).then((release) => (order.push('room-1'), release())),
      slots.acquire(1).then((release) => (order.push('room-2'), release())),
      slots.acquire(0).then((release) => (order.push('gw'), release())),
    ];
    first();
    await Promise.all(waiting);
    expect(order).toEqual(['gw', 'room-1', 'room-2']);
  });
});
