/** The one dependency-order scheduler of every boot (engine/boot-order.ts), with jobs held and let go by the test. */
import { describe, expect, it } from 'vitest';
import { inDependencyOrder } from '../../lib/engine/boot-order.js';

/** A promise the test settles. */
function held<T>(): { promise: Promise<T>; resolve(value: T): void } {
  let resolve!: (value: T) => void;
  return { promise: new Promise<T>((r) => (resolve = r)), resolve };
}

/** Lets every job go as far as it can before the test looks (promise callbacks, not time). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('jobs in dependency order', () => {
  const dependsOn: Record<string, string[]> = { web: ['gw', 'web-silicon'], 'web-silicon': ['gw'], gw: [], other: [], pc: ['off-lab'] };

  it('start at once, each waits where it asks for what it depends on, hears whether that booted, and a failure fails its dependents alone', async () => {
    const log: string[] = [];
    const gw = held<boolean>();
    const ended = inDependencyOrder(['web', 'web-silicon', 'gw', 'other', 'pc'], async (name, after) => {
      log.push(`${name} builds`); // before anything it depends on has ended: builds run side by side
      const booted = await Promise.all(dependsOn[name]!.map(after)); // a machine not among them: undefined, nothing to wait for
      log.push(`${name} boots after ${booted.join(',') || 'nothing'}`);
      if (name === 'gw') return gw.promise;
      if (name === 'web-silicon') throw new Error('web-silicon failed');
      return name !== 'other';
    });
    await settle();
    expect(log).toEqual(['web builds', 'web-silicon builds', 'gw builds', 'other builds', 'pc builds', 'gw boots after nothing', 'other boots after nothing', 'pc boots after nothing']);
    gw.resolve(true);
    const results = await ended;
    expect(log.slice(8)).toEqual(['web-silicon boots after true']);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual(['web-silicon failed', 'web-silicon failed', true, false, true]);
  });

  it('ends only once every job has, a failed one included: nothing still boots when the command ends', async () => {
    const gw = held<boolean>();
    let done = false;
    const ended = inDependencyOrder(['broken', 'gw'], async (name) => {
      if (name === 'broken') throw new Error('broken failed');
      return gw.promise;
    }).then((results) => ((done = true), results));
    await settle();
    expect(done).toBe(false); // broken failed at once, gw still boots
    gw.resolve(true);
    expect((await ended).map((r) => r.status)).toEqual(['rejected', 'fulfilled']);
  });
});
