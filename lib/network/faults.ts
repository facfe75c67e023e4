import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { HostDriver } from '../driver.js';
import { HostError, UsageError } from '../errors.js';
import { run } from '../exec.js';
import { isAlive, refOf } from '../state/process.js';
import type { ProcessRef } from '../state/state.js';
import type { LinkRelays } from './relay.js';

/**
 * Link faults for scenarios, on the host side of a machine's veth (in the lab's namespace in
 * sandbox mode): a cut link drops every frame to and from the machine in the bridge (nftables,
 * bridge family: the machine keeps its carrier and its addresses, as with a cable cut behind a
 * switch); an impaired link goes through the kernel's netem, or where the kernel lacks it, nftables
 * (loss), tbf (rate) and a relay (delay). Every table carries the lab's name.
 */

export interface Impairment {
  /** Added to every packet towards the machine, in milliseconds. */
  delayMs?: number;
  jitterMs?: number;
  /** Packets dropped at random, in percent. */
  lossPercent?: number;
  /** The link's rate towards the machine, in kbit/s. */
  rateKbit?: number;
}

/** Ranges netem takes sensibly; anything else is an error of the scenario (exit 2). */
export function checkImpairment(impairment: Impairment): void {
  const check = (field: keyof Impairment, min: number, max: number) => {
    const value = impairment[field];
    if (value === undefined) return;
    if (!Number.isFinite(value) || value < min || value > max) throw new UsageError(`impair: ${field} ${value} is out of range (${min} to ${max})`);
  };
  check('delayMs', 0, 60_000);
  check('jitterMs', 0, impairment.delayMs ?? 0);
  check('lossPercent', 0, 100);
  check('rateKbit', 8, 10_000_000);
  if (Object.values(impairment).every((v) => v === undefined)) throw new UsageError('impair: give at least one of delayMs, jitterMs, lossPercent, rateKbit');
}

/** tc's arguments for netem. */
export function netemArgs(impairment: Impairment): string[] {
  const args: string[] = [];
  if (impairment.delayMs !== undefined) args.push('delay', `${impairment.delayMs}ms`, ...(impairment.jitterMs ? [`${impairment.jitterMs}ms`] : []));
  if (impairment.lossPercent !== undefined) args.push('loss', `${impairment.lossPercent}%`);
  if (impairment.rateKbit !== undefined) args.push('rate', `${impairment.rateKbit}kbit`);
  return args;
}

/** The nftables table (bridge family) in which one scenario worker (`owner`, a pid) cuts one link. */
export function blockTable(nftTable: string, link: string, owner: number): string {
  return `${faultPrefix(nftTable)}${link.replace(/[^A-Za-z0-9_]/g, '_')}_${owner}`;
}

const faultPrefix = (nftTable: string) => `${nftTable}_fault_`;
/** Impairments of one link do not add up: one table per link, held by one worker at a time. */
const lossTable = (nftTable: string, link: string) => `${faultPrefix(nftTable)}${link.replace(/[^A-Za-z0-9_]/g, '_')}_loss`;

/** Drops every frame through the bridge ports that stand for a link: its own, and its relay's while it is delayed. */
export function blockRuleset(table: string, ports: readonly string[]): string {
  const names = `{ ${ports.map((p) => `"${p}"`).join(', ')} }`;
  return [
    `table bridge ${table} {`,
    `  chain from_machine { type filter hook prerouting priority -200; policy accept; iifname ${names} drop; }`,
    `  chain to_machine { type filter hook forward priority -200; policy accept; oifname ${names} drop; }`,
    `  chain from_host { type filter hook output priority -200; policy accept; oifname ${names} drop; }`,
    '}',
    '',
  ].join('\n');
}

/** Who set a fault on a link: kept as a file of the lab's until it is undone. */
interface FaultClaim {
  kind: 'block' | 'impair';
  link: string;
  owner: ProcessRef;
}

/**
 * The lab's link faults, each claimed by the scenario worker that set it (a file under the lab's
 * state, written before the fault): a test undoes only its own, so that two scenarios running side
 * by side cut the same link each in a table of its own and neither's end undoes the other's, and
 * impairing a link another live worker impairs is refused. What a worker that died set (a killed
 * `lab test`) is undone by the next lab command that holds the lab's lock (see engine/session.ts).
 */
export class LinkFaults implements HostDriver {
  constructor(
    private readonly options: { dir: string; netnsPrefix: readonly string[]; nftTable: string; bridges: readonly string[] },
    readonly relays: LinkRelays,
  ) {}

  tools() {
    return [];
  }

  describe(): string {
    return 'link faults of scenarios (nftables in the bridge family, netem or tc, relays)';
  }

  private claimFile(kind: FaultClaim['kind'], link: string, owner: number): string {
    return path.join(this.options.dir, kind === 'block' ? `block-${link}-${owner}.json` : `impair-${link}.json`);
  }

  private claims(): FaultClaim[] {
    if (!existsSync(this.options.dir)) return [];
    return readdirSync(this.options.dir).flatMap((file) => {
      try {
        return [JSON.parse(readFileSync(path.join(this.options.dir, file), 'utf8')) as FaultClaim];
      } catch {
        return []; // half written: the fault after it was never set
      }
    });
  }

  private claim(kind: FaultClaim['kind'], link: string): void {
    mkdirSync(this.options.dir, { recursive: true, mode: 0o700 });
    const owner = refOf(process.pid)!;
    writeFileSync(this.claimFile(kind, link, owner.pid), JSON.stringify({ kind, link, owner } satisfies FaultClaim));
  }

  private release(kind: FaultClaim['kind'], link: string, owner = process.pid): void {
    rmSync(this.claimFile(kind, link, owner), { force: true });
  }

  /** Cuts the link, in this worker's own table (removed by its `unblock`). */
  async block(link: string): Promise<void> {
    this.claim('block', link);
    const table = blockTable(this.options.nftTable, link, process.pid);
    const ruleset = blockRuleset(table, [link, this.relays.bridgePort(link)]);
    await run([...this.options.netnsPrefix, 'nft', '-f', '-'], { input: `table bridge ${table}\ndelete table bridge ${table}\n${ruleset}` });
  }

  async unblock(link: string, owner = process.pid): Promise<void> {
    await run([...this.options.netnsPrefix, 'nft', 'delete', 'table', 'bridge', blockTable(this.options.nftTable, link, owner)], { allowFailure: true });
    this.release('block', link, owner);
  }

  /**
   * Impairs the link towards the machine with netem. A kernel without netem gets the same from other
   * parts: delay (with jitter and loss) from a relay of frames (relay.ts), loss alone from nftables'
   * random numbers (bridge family), rate from tbf. Replaces this worker's impairment before it.
   */
  async impair(link: string, impairment: Impairment, machine: string): Promise<'netem' | 'relay' | 'nftables+tbf'> {
    const holder = this.claims().find((c) => c.kind === 'impair' && c.link === link && c.owner.pid !== process.pid && isAlive(c.owner));
    if (holder) {
      throw new UsageError(
        `impair: ${machine}'s link ${link} is impaired by another scenario running now (pid ${holder.owner.pid}), and impairments of one link cannot overlap`,
        'put one of the two scenarios under exclusive/, so that they run one after the other',
      );
    }
    await this.clearImpairment(link);
    this.claim('impair', link);
    const prefix = this.options.netnsPrefix;
    const result = await run([...prefix, 'tc', 'qdisc', 'replace', 'dev', link, 'root', 'netem', ...netemArgs(impairment)], { allowFailure: true });
    if (result.exitCode === 0) return 'netem';
    if (!/qdisc kind is unknown/i.test(result.stderr)) throw new HostError(`impair: tc failed on ${link}: ${result.stderr.trim()}`);
    const relayed = impairment.delayMs !== undefined || impairment.jitterMs !== undefined;
    if (relayed) await this.relays.start(link, { delayMs: impairment.delayMs ?? 0, jitterMs: impairment.jitterMs ?? 0, lossPercent: impairment.lossPercent ?? 0 });
    else if (impairment.lossPercent !== undefined) {
      const table = lossTable(this.options.nftTable, link);
      // In hundredths of a percent; 100% is every packet (numgen's range ends below its modulus).
      const hundredths = Math.round(impairment.lossPercent * 100);
      const drop = `oifname "${link}" ${hundredths >= 10_000 ? '' : `numgen random mod 10000 < ${hundredths} `}drop;`;
      const ruleset = [
        `table bridge ${table}`,
        `delete table bridge ${table}`,
        `table bridge ${table} {`,
        `  chain to_machine { type filter hook forward priority -200; policy accept; ${drop} }`,
        `  chain from_host { type filter hook output priority -200; policy accept; ${drop} }`,
        '}',
        '',
      ].join('\n');
      await run([...prefix, 'nft', '-f', '-'], { input: ruleset });
    }
    if (impairment.rateKbit !== undefined) {
      await run([...prefix, 'tc', 'qdisc', 'replace', 'dev', link, 'root', 'tbf', 'rate', `${impairment.rateKbit}kbit`, 'burst', '32kbit', 'latency', '400ms']);
    }
    return relayed ? 'relay' : 'nftables+tbf';
  }

  /** Undoes the link's impairment, this worker's or `owner`'s (a worker that died); another live worker's stays. */
  async clearImpairment(link: string, owner = process.pid): Promise<void> {
    const claim = this.claims().find((c) => c.kind === 'impair' && c.link === link);
    if (claim && claim.owner.pid !== owner && isAlive(claim.owner)) return;
    const prefix = this.options.netnsPrefix;
    await this.relays.stop(link);
    await run([...prefix, 'tc', 'qdisc', 'del', 'dev', link, 'root'], { allowFailure: true });
    await run([...prefix, 'nft', 'delete', 'table', 'bridge', lossTable(this.options.nftTable, link)], { allowFailure: true });
    if (claim) this.release('impair', link, claim.owner.pid);
  }

  /** Undoes the faults whose worker is gone; one directory read when there are none. Returns what it undid. */
  async clearAbandoned(): Promise<string[]> {
    const undone: string[] = [];
    for (const claim of this.claims().filter((c) => !isAlive(c.owner))) {
      if (claim.kind === 'block') await this.unblock(claim.link, claim.owner.pid);
      else await this.clearImpairment(claim.link, claim.owner.pid);
      undone.push(`${claim.kind === 'block' ? 'cut' : 'impaired'} link ${claim.link}, by a scenario worker (pid ${claim.owner.pid}) that ended without undoing it`);
    }
    return undone;
  }

  /** Every fault of the lab undone: its relays, its cut links, any qdisc on a port of its bridges (after a run, whatever its scenarios left). */
  async clearAll(): Promise<void> {
    const prefix = this.options.netnsPrefix;
    await this.relays.stopAll();
    for (const table of await this.tables()) await run([...prefix, 'nft', 'delete', 'table', 'bridge', table], { allowFailure: true });
    for (const bridge of this.options.bridges) {
      const ports = await run([...prefix, 'ip', '-o', 'link', 'show', 'master', bridge], { allowFailure: true });
      for (const port of linksByIndex(ports.stdout).values()) await run([...prefix, 'tc', 'qdisc', 'del', 'dev', port, 'root'], { allowFailure: true });
    }
    rmSync(this.options.dir, { recursive: true, force: true });
  }

  /** The lab's fault tables (named after the lab) in the namespace of its bridges; a host without nft has none. */
  private async tables(): Promise<string[]> {
    const listed = await run([...this.options.netnsPrefix, 'nft', 'list', 'tables', 'bridge'], { allowFailure: true }).catch(() => ({ stdout: '' }));
    return listed.stdout
      .split('\n')
      .map((line) => /^table bridge (\S+)$/.exec(line.trim())?.[1])
      .filter((t): t is string => t !== undefined && t.startsWith(faultPrefix(this.options.nftTable)));
  }

  async leftovers(): Promise<string[]> {
    const found = await this.relays.leftovers();
    for (const table of await this.tables()) found.push(`nft table bridge ${table} (a link ${table.endsWith('_loss') ? 'impaired' : 'cut'} by a scenario)`);
    for (const claim of this.claims().filter((c) => !isAlive(c.owner))) found.push(`link ${claim.link} ${claim.kind === 'block' ? 'cut' : 'impaired'} by a scenario worker that is gone (pid ${claim.owner.pid})`);
    return found;
  }

  async destroy(): Promise<void> {
    await this.clearAll();
    await this.relays.destroy();
  }
}

/**
 * The host side of each of a machine's interfaces: the interface whose index the machine's end
 * names as its peer (iflink), looked up in the namespace the bridges are in.
 */
export function hostSideLinks(peerIndexes: readonly number[], ipLinkOutput: string): (string | undefined)[] {
  const byIndex = linksByIndex(ipLinkOutput);
  return peerIndexes.map((index) => byIndex.get(index));
}

/** `ip -o link show` lines (`9: vb-web@if2: <...>`): each link's name by its index. */
function linksByIndex(ipLinkOutput: string): Map<number, string> {
  const byIndex = new Map<number, string>();
  for (const line of ipLinkOutput.split('\n')) {
    const match = /^(\d+): ([^:@\s]+)/.exec(line);
    if (match) byIndex.set(Number(match[1]), match[2]!);
  }
  return byIndex;
}

