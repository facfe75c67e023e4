import { describe, expect, it } from 'vitest';
import { defaultLab } from '../../lib/config/default.js';
import { topologyOf } from '../../lib/config/topology.js';
import { validateConfig } from '../../lib/config/validate.js';
import { type DhcpLab, dhcpPortOpen, kickDhcpClients, servesDhcp, whenDhcpListens } from '../../lib/network/dhcp-kick.js';
import type { LabState } from '../../lib/state/state.js';

const topology = topologyOf(validateConfig(defaultLab));
const HEADER = '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops';
const socket = (local: string, remote: string) => `  10: ${local} ${remote} 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0`;
/** No such process: pids stop at 2^22, so its /proc files (its addresses) are never there. */
const NO_PID = 4_194_305;

/** A runtime that finds every machine's init and records the commands run in machines. */
function fakeLab(ran: string[][] = []): DhcpLab {
  return {
    topology,
    runtime: {
      leaderPid: async () => NO_PID,
      exec: async (handle, argv) => {
        ran.push([handle.name, ...argv]);
        return { argv, exitCode: 0, stdout: '', stderr: '', durationMs: 0 };
      },
    },
  };
}

const running = (...names: string[]): LabState => ({ machines: Object.fromEntries(names.map((name, i) => [name, { process: { pid: 1000 + i, startTime: '1' } }])) });

describe('the DHCP kick', () => {
  it('sees the DHCP server listen on UDP port 67 in /proc/net/udp, IPv4 or IPv6, and nothing else', () => {
    expect(dhcpPortOpen([HEADER, socket('00000000:0043', '00000000:0000')].join('\n'))).toBe(true);
    expect(dhcpPortOpen([HEADER, socket('00000000000000000000000000000000:0043', '00000000000000000000000000000000:0000')].join('\n'))).toBe(true);
    // A DHCP client (port 68) talking to a server's port 67, a resolver on 53, an empty table.
    expect(dhcpPortOpen([HEADER, socket('00000000:0044', 'FE00E00A:0043'), socket('0100007F:0035', '00000000:0000')].join('\n'))).toBe(false);
    expect(dhcpPortOpen(`${HEADER}\n`)).toBe(false);
  });

  it('knows which machine serves DHCP', () => {
    expect(topology.machines.map((m) => m.name).filter((m) => servesDhcp(topology, m))).toEqual(['gw']);
  });

  it("tells the server's clients still booting, and only them, to ask again on the interfaces it serves", async () => {
    const ran: string[][] = [];
    await kickDhcpClients(fakeLab(ran), running('gw', 'web-silicon', 'web'), 'gw', new Set(['gw', 'web']));
    expect(ran).toEqual([['web', 'networkctl', 'reconfigure', 'host0']]);
    ran.length = 0;
    await kickDhcpClients(fakeLab(ran), running('gw', 'web-silicon', 'web'), 'web', new Set(['web-silicon']));
    expect(ran).toEqual([]); // web serves no DHCP
  });

  it('stops waiting for the server to listen when its boot ends, or at the deadline', async () => {
    const lab: DhcpLab = { topology, runtime: { ...fakeLab().runtime, leaderPid: async () => undefined } }; // its init not there yet
    const started = Date.now();
    await whenDhcpListens(lab, running('gw'), 'gw', new Promise((resolve) => setTimeout(resolve, 30)), 60_000);
    await whenDhcpListens(lab, running('gw'), 'gw', new Promise(() => undefined), 30);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
