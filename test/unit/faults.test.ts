import { describe, expect, it } from 'vitest';
import { blockRuleset, blockTable, checkImpairment, hostSideLinks, netemArgs } from '../../lib/network/faults.js';
import { masterOf, relayPorts } from '../../lib/network/relay.js';

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
    const table = blockTable('lab_dev', 'vb-dev-web');
    expect(table).toBe('lab_dev_fault_vb_dev_web');
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
