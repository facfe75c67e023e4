import { describe, expect, it } from 'vitest';
import { parseRoutes, unconfiguredInterfaces } from '../../lib/runtime/routes.js';

// /proc/<pid>/net/route as the kernel prints it (tab-separated, a header, padded lines).
const table = (...rows: string[]) =>
  ['Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT                                                       ', ...rows.map((r) => `${r}                    `), ''].join('\n');
const prefix = (iface: string) => `${iface}\t0000E90A\t00000000\t0001\t0\t0\t0\t00FCFFFF\t0\t0\t0`;
const defaultVia = (iface: string) => `${iface}\t00000000\tFE03E90A\t0003\t0\t0\t1024\t00000000\t0\t0\t0`;

describe("a machine's interfaces, configured as its routing table tells", () => {
  it('parses the kernel table', () => {
    expect(parseRoutes(table(prefix('host0'), defaultVia('host0')))).toEqual([
      { iface: 'host0', destination: '0000E90A' },
      { iface: 'host0', destination: '00000000' },
    ]);
    expect(parseRoutes(table())).toEqual([]);
  });

  it('counts an interface once it has an address (its prefix route), and its default route when one is due', () => {
    const expected = [
      { name: 'host0', defaultRoute: true },
      { name: 'users', defaultRoute: false },
    ];
    expect(unconfiguredInterfaces(expected, parseRoutes(table()))).toEqual(['host0', 'users']);
    expect(unconfiguredInterfaces(expected, parseRoutes(table(prefix('host0'), prefix('users'))))).toEqual(['host0']); // leased, no gateway yet
    expect(unconfiguredInterfaces(expected, parseRoutes(table(prefix('host0'), defaultVia('host0'))))).toEqual(['users']);
    expect(unconfiguredInterfaces(expected, parseRoutes(table(prefix('host0'), defaultVia('host0'), prefix('users'))))).toEqual([]);
    // A default route out of another interface is not this one's.
    expect(unconfiguredInterfaces([{ name: 'host0', defaultRoute: true }], parseRoutes(table(prefix('host0'), defaultVia('users'))))).toEqual(['host0']);
  });
});
