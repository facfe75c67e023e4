import { HostError, UsageError } from '../errors.js';
import { run } from '../exec.js';
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

/** The nftables table (bridge family) that cuts one link. */
export function blockTable(nftTable: string, link: string): string {
  return `${nftTable}_fault_${link.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

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

export async function blockLink(prefix: readonly string[], nftTable: string, link: string, relays: LinkRelays): Promise<void> {
  const table = blockTable(nftTable, link);
  const ruleset = blockRuleset(table, [link, relays.bridgePort(link)]);
  await run([...prefix, 'nft', '-f', '-'], { input: `table bridge ${table}\ndelete table bridge ${table}\n${ruleset}` });
}

export async function unblockLink(prefix: readonly string[], nftTable: string, link: string): Promise<void> {
  await run([...prefix, 'nft', 'delete', 'table', 'bridge', blockTable(nftTable, link)], { allowFailure: true });
}

/**
 * Impairs the link towards the machine with netem. A kernel without netem gets the same from other
 * parts: delay (with jitter and loss) from a relay of frames (relay.ts), loss alone from nftables'
 * random numbers (bridge family), rate from tbf.
 */
export async function impairLink(prefix: readonly string[], nftTable: string, link: string, impairment: Impairment, relays: LinkRelays): Promise<'netem' | 'relay' | 'nftables+tbf'> {
  await clearImpairment(prefix, nftTable, link, relays); // an impairment replaces the one before
  const result = await run([...prefix, 'tc', 'qdisc', 'replace', 'dev', link, 'root', 'netem', ...netemArgs(impairment)], { allowFailure: true });
  if (result.exitCode === 0) return 'netem';
  if (!/qdisc kind is unknown/i.test(result.stderr)) throw new HostError(`impair: tc failed on ${link}: ${result.stderr.trim()}`);
  const relayed = impairment.delayMs !== undefined || impairment.jitterMs !== undefined;
  if (relayed) await relays.start(link, { delayMs: impairment.delayMs ?? 0, jitterMs: impairment.jitterMs ?? 0, lossPercent: impairment.lossPercent ?? 0 });
  else if (impairment.lossPercent !== undefined) {
    const table = lossTable(nftTable, link);
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

const lossTable = (nftTable: string, link: string) => `${blockTable(nftTable, link)}_loss`;

export async function clearImpairment(prefix: readonly string[], nftTable: string, link: string, relays: LinkRelays): Promise<void> {
  await relays.stop(link);
  await run([...prefix, 'tc', 'qdisc', 'del', 'dev', link, 'root'], { allowFailure: true });
  await run([...prefix, 'nft', 'delete', 'table', 'bridge', lossTable(nftTable, link)], { allowFailure: true });
}

/** Every link cut by the lab's scenarios (tables named after the lab), to remove on destroy or after a run. */
export async function faultTables(prefix: readonly string[], nftTable: string): Promise<string[]> {
  const listed = await run([...prefix, 'nft', 'list', 'tables', 'bridge'], { allowFailure: true });
  return listed.stdout
    .split('\n')
    .map((line) => /^table bridge (\S+)$/.exec(line.trim())?.[1])
    .filter((t): t is string => t !== undefined && t.startsWith(`${nftTable}_fault_`));
}

export async function removeFaultTables(prefix: readonly string[], nftTable: string): Promise<void> {
  for (const table of await faultTables(prefix, nftTable)) await run([...prefix, 'nft', 'delete', 'table', 'bridge', table], { allowFailure: true });
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

/** Every fault of the lab undone: its relays, its cut links, and any qdisc on a port of its bridges (after a run, whatever its scenarios left). */
export async function clearLabFaults(prefix: readonly string[], nftTable: string, bridges: readonly string[], relays: LinkRelays): Promise<void> {
  await relays.stopAll();
  await removeFaultTables(prefix, nftTable);
  for (const bridge of bridges) {
    const ports = await run([...prefix, 'ip', '-o', 'link', 'show', 'master', bridge], { allowFailure: true });
    for (const port of linksByIndex(ports.stdout).values()) await run([...prefix, 'tc', 'qdisc', 'del', 'dev', port, 'root'], { allowFailure: true });
  }
}
