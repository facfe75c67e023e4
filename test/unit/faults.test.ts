import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UsageError } from '../../lib/errors.js';
import { blockRuleset, blockTable, checkImpairment, hostSideLinks, LinkFaults, netemArgs } from '../../lib/network/faults.js';
import { refOf } from '../../lib/state/process.js';
import { LinkRelays, masterOf, relayPorts } from '../../lib/network/relay.js';

describe('link faults', () => {
  it('turns an impairment into netem arguments', () => {
    expect(netemArgs({ delayMs: 100, jitterMs: 10, lossPercent: 2.5, rateKbit: 1000 })).toEqual(['delay', '100ms', '10ms', 'loss', '2.5%', 'rate', '1000kbit']);
    expect(netemArgs({ lossPercent: 0 })).toEqual(['loss', '0%']);
  });

  it('refuses settings out of range, naming the field (exit 2)', () => {
    expect(() => checkImpairment({ lossPercent: 101 })).toThrow('impair: lossPercent 101 is out of range (0 to 100)');
    expect(() => checkImpairment({ delayMs: -1 })).toThrow('delayMs -1 is out of range');
    expect(() => checkImpairment({ delayMs: 10, jitterMs: 20 })).toThrow('jitterMs 20 is out of range (0 to 10)');
    expect(() => checkImpairment({ rateKbit: 1 })).toThrow('rateKbit 1 is out of range');
    expect(() => checkImpairment({})).toThrow('give at least one of');
    try {
      checkImpairment({ lossPercent: NaN });
    } catch (error) {
      expect((error as { exitCode: number }).exitCode).toBe(2);
    }
  });

  it("cuts a link in both directions, in a table named after the lab", () => {
    const table = blockTable('lab_dev', 'vb-dev-web', 4242);
    expect(table).toBe('lab_dev_fault_vb_dev_web_4242'); // the worker's own: two scenarios cutting one link do not undo each other's
    // The link's own port, and its relay's while it is delayed without netem.
    const ruleset = blockRuleset(table, ['vb-dev-web', relayPorts('dev', 'vb-dev-web').bridgeEnd]);
    const ports = '{ "vb-dev-web", "lr0274958ab" }';
    expect(ruleset).toContain(`hook prerouting priority -200; policy accept; iifname ${ports} drop;`);
    expect(ruleset).toContain(`hook forward priority -200; policy accept; oifname ${ports} drop;`);
    expect(ruleset).toContain(`hook output priority -200; policy accept; oifname ${ports} drop;`);
  });

  it("names a link's relay ports after the lab and the link, within the kernel's 15 characters, and reads a port's bridge", () => {
    const ports = relayPorts('dev', 'vb-dev-web');
    expect(ports).toEqual({ relayEnd: 'lr0274958ar', bridgeEnd: 'lr0274958ab' });
    expect(relayPorts('other', 'vb-dev-web').relayEnd).not.toBe(ports.relayEnd);
    expect(masterOf('9: vb-dev-web@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master vz-prolo state UP')).toBe('vz-prolo');
    expect(masterOf('9: vb-dev-web@if2: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN')).toBeUndefined();
  });

  it("finds the host side of a machine's links by their peers' indexes", () => {
    const listed = ['1: lo: <LOOPBACK,UP>', '7: vz-prolo: <BROADCAST>', '9: vb-dev-web@if2: <BROADCAST>', '12: vl0123456789a@if3: <BROADCAST>'].join('\n');
    expect(hostSideLinks([9, 12, 40], listed)).toEqual(['vb-dev-web', 'vl0123456789a', undefined]);
  });
});

describe('link faults claimed by the scenario worker that set them', () => {
  // Every command the faults run is `true <command...>`: the claims are what is under test, not nft or tc.
  const faultsIn = (dir: string) => new LinkFaults({ dir, netnsPrefix: ['true'], nftTable: 'lab_dev', bridges: [] }, new LinkRelays({ labName: 'dev', netnsPrefix: ['true'], dir: path.join(dir, '..', 'relays') }));
  const claimOf = (kind: string, link: string, owner: { pid: number; startTime: string }) => JSON.stringify({ kind, link, owner });
  let sleeper: ChildProcess;
  let dir: string;
  beforeEach(() => {
    dir = path.join(mkdtempSync(path.join(tmpdir(), 'lab-faults-')), 'faults');
    mkdirSync(dir);
    sleeper = spawn('sleep', ['60']);
  });
  afterEach(() => void sleeper.kill());

  it("refuses to impair a link another live worker impairs, and leaves the other's impairment alone when clearing its own", async () => {
    const other = refOf(sleeper.pid!)!;
    writeFileSync(path.join(dir, 'impair-vb-dev-web.json'), claimOf('impair', 'vb-dev-web', other));
    const faults = faultsIn(dir);
    const refused = await faults.impair('vb-dev-web', { delayMs: 10 }, 'web').catch((error: UsageError) => error);
    expect(refused).toBeInstanceOf(UsageError);
    expect((refused as UsageError).message).toBe(`impair: web's link vb-dev-web is impaired by another scenario running now (pid ${other.pid}), and impairments of one link cannot overlap`);
    await faults.clearImpairment('vb-dev-web');
    expect(readdirSync(dir)).toEqual(['impair-vb-dev-web.json']);
  });

  it("cuts a link in a table of each worker's own, and undoes only its own", async () => {
    const other = refOf(sleeper.pid!)!;
    writeFileSync(path.join(dir, `block-vb-dev-web-${other.pid}.json`), claimOf('block', 'vb-dev-web', other));
    const faults = faultsIn(dir);
    await faults.block('vb-dev-web');
    expect(readdirSync(dir).sort()).toEqual([`block-vb-dev-web-${other.pid}.json`, `block-vb-dev-web-${process.pid}.json`].sort());
    await faults.unblock('vb-dev-web');
    expect(readdirSync(dir)).toEqual([`block-vb-dev-web-${other.pid}.json`]);
    expect(await faults.clearAbandoned()).toEqual([]); // its worker lives
  });

  it('undoes what a worker that died set, once, and says so', async () => {
    const dead = { pid: 999_999_999, startTime: '1' };
    writeFileSync(path.join(dir, `block-vb-dev-web-${dead.pid}.json`), claimOf('block', 'vb-dev-web', dead));
    writeFileSync(path.join(dir, 'impair-vb-dev-gw.json'), claimOf('impair', 'vb-dev-gw', dead));
    const faults = faultsIn(dir);
    expect((await faults.clearAbandoned()).sort()).toEqual([
      'cut link vb-dev-web, by a scenario worker (pid 999999999) that ended without undoing it',
      'impaired link vb-dev-gw, by a scenario worker (pid 999999999) that ended without undoing it',
    ]);
    expect(readdirSync(dir)).toEqual([]);
    expect(await faults.clearAbandoned()).toEqual([]);
  });
});
