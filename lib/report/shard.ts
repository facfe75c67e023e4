import { UsageError } from '../errors.js';
import type { RunReport } from './write.js';

/** `lab test --shard 2/3`: the second of three shares of the scenarios. */
export interface Shard {
  /** From 1. */
  index: number;
  count: number;
}

export function parseShard(text: string): Shard {
  const match = /^(\d+)\/(\d+)$/.exec(text);
  const [index, count] = match ? [Number(match[1]), Number(match[2])] : [NaN, NaN];
  if (!match || count < 1 || index < 1 || index > count) {
    throw new UsageError(`--shard ${text}: use i/n, with n at least 1 and i from 1 to n (--shard 1/2 and --shard 2/2 split the scenarios in two)`);
  }
  return { index, count };
}

/** Each scenario's duration in an earlier run's report (results.json), by name. */
export function durationsOf(report: RunReport): Map<string, number> {
  return new Map(report.scenarios.map((s) => [s.name, s.durationMs]));
}

/**
 * Scenario names split into `count` shares: every name in exactly one, the same split for the same
 * names and durations wherever it is computed (each runner computes its own). The longest first,
 * each to the share with the least so far (ties: the lower share); a scenario the durations do not
 * know counts as their mean (all alike without durations: round robin by name). Each share sorted.
 */
export function assignShards(names: readonly string[], count: number, durations: ReadonlyMap<string, number> = new Map()): string[][] {
  const known = [...new Set(names)].map((name) => durations.get(name)).filter((d): d is number => d !== undefined);
  const mean = known.length > 0 ? known.reduce((a, b) => a + b, 0) / known.length : 1;
  const weight = (name: string) => durations.get(name) ?? mean;
  const order = [...new Set(names)].sort((a, b) => weight(b) - weight(a) || (a < b ? -1 : a > b ? 1 : 0));
  const shares = Array.from({ length: count }, () => ({ names: [] as string[], total: 0 }));
  for (const name of order) {
    const lightest = shares.reduce((best, share) => (share.total < best.total ? share : best));
    lightest.names.push(name);
    lightest.total += weight(name);
  }
  return shares.map((share) => share.names.sort());
}
