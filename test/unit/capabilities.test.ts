/**
 * What tcpdump, the link relay and qemu keep of root's capabilities. Real host commands, no lab:
 * setpriv on a command that prints its own capabilities, and tcpdump recording a bridge in a
 * network namespace made for the test (root only; skipped otherwise).
 */
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BareLab } from '../../lib/engine/lab-types.js';
import { run, withCapabilities } from '../../lib/exec.js';
import { findCommand } from '../../lib/host/prereq.js';
import { findProcesses } from '../../lib/host/procs.js';
import { LinkRelays } from '../../lib/network/relay.js';
import { ScenarioCapture } from '../../lib/scenario/capture.js';
import { FAST, poll } from '../../lib/wait.js';

const root = process.getuid?.() === 0;
/** Bits of a capability set, as /proc/<pid>/status shows them. */
const CAP = { dac_read_search: 1n << 2n, net_admin: 1n << 12n, net_raw: 1n << 13n, setgid: 1n << 6n };
const capabilities = (status: string) =>
  Object.fromEntries([...status.matchAll(/^(Cap\w+|NoNewPrivs):\s*(\S+)$/gm)].map(([, key, value]) => [key, key === 'NoNewPrivs' ? Number(value) : BigInt(`0x${value}`)]));

describe.skipIf(!root)('withCapabilities', () => {
  it('leaves the command these capabilities alone, in every set, with no_new_privs', async () => {
    const { stdout } = await run(withCapabilities(['net_raw', 'net_admin'], ['cat', '/proc/self/status']));
    const want = CAP.net_raw | CAP.net_admin;
    expect(capabilities(stdout)).toMatchObject({ CapInh: want, CapPrm: want, CapEff: want, CapBnd: want, CapAmb: 0n, NoNewPrivs: 1 });
    expect(stdout).toMatch(/^Uid:\s+0\s/m);
  });
});

describe.skipIf(!root)('in a network namespace of the test', () => {
  let holder: ReturnType<typeof spawn>;
  let prefix: string[];
  // Reports of a lab kept in a user's home: root made them, in a directory that is the user's alone.
  const home = mkdtempSync(path.join(tmpdir(), 'lab-home-'));
  const dir = path.join(home, 'run', 'captures', 'scenario');

  beforeAll(async () => {
    chownSync(home, 65534, 65534);
    chmodSync(home, 0o700);
    // A network namespace of the test's own, held by a sleep, with a bridge and a port in it.
    holder = spawn('unshare', ['--net', 'sleep', '600'], { stdio: 'ignore' });
    await poll('the namespace of the test', () => existsSync(`/proc/${holder.pid}/ns/net`) && readFileSync(`/proc/${holder.pid}/cmdline`, 'utf8').startsWith('sleep'), { within: 5000, every: FAST });
    prefix = ['nsenter', `--net=/proc/${holder.pid}/ns/net`];
    const ip = (...args: string[]) => run([...prefix, 'ip', ...args]);
    await ip('link', 'add', 'br0', 'type', 'bridge');
    await ip('link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    await ip('link', 'set', 'v0', 'master', 'br0');
    for (const link of ['v0', 'v1', 'br0']) await ip('link', 'set', link, 'up');
    await ip('addr', 'add', '10.9.9.1/24', 'dev', 'br0');
  });

  afterAll(() => {
    holder?.kill('SIGKILL'); // the namespace goes with its last process
    rmSync(home, { recursive: true, force: true });
  });

  it('runs a link relay with net_raw and dac_read_search alone', async () => {
    const relays = new LinkRelays({ labName: 'unit', netnsPrefix: prefix, dir: path.join(path.dirname(dir), 'relays') });
    await relays.start('v0', { delayMs: 50, jitterMs: 0, lossPercent: 0 });
    try {
      const [relay] = findProcesses((argv) => argv.some((a) => a.endsWith('link-relay.py')) && argv.includes('v0'));
      expect(relay).toBeDefined();
      expect(capabilities(readFileSync(`/proc/${relay!.process.pid}/status`, 'utf8'))).toMatchObject({ CapPrm: CAP.net_raw | CAP.dac_read_search, CapEff: CAP.net_raw | CAP.dac_read_search, CapBnd: CAP.net_raw | CAP.dac_read_search, NoNewPrivs: 1 });
    } finally {
      await relays.stop('v0');
    }
    expect((await run([...prefix, 'ip', '-o', 'link', 'show', 'dev', 'v0'])).stdout).toContain(' master br0 ');
  });

  it.skipIf(!findCommand('tcpdump'))('runs tcpdump with net_raw, setgid and dac_read_search alone, records the bridge under a home directory, and its pcap is 0600 in a 0700 directory', async () => {
    const lab = { topology: { networks: [{ name: 'lan', bridge: 'br0' }] }, network: { netnsPrefix: prefix } } as unknown as BareLab;
    const capture = new ScenarioCapture(lab, dir);
    await capture.start();
    const pcap = path.join(dir, 'lan.pcap');
    try {
      const [tcpdump] = findProcesses((argv) => argv[0] === 'tcpdump' && argv.includes(pcap));
      expect(tcpdump).toBeDefined();
      const want = CAP.net_raw | CAP.setgid | CAP.dac_read_search;
      expect(capabilities(readFileSync(`/proc/${tcpdump!.process.pid}/status`, 'utf8'))).toMatchObject({ CapPrm: want, CapEff: want, CapBnd: want, NoNewPrivs: 1 });
      expect(statSync(pcap).mode & 0o777).toBe(0o600);
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      // An address nobody has: ARP asks for it on the bridge, broadcast, which the capture sees.
      await run([...prefix, 'bash', '-c', 'exec 3<>/dev/tcp/10.9.9.5/1'], { allowFailure: true, timeout: 1000 }).catch(() => undefined);
    } finally {
      await capture.stop(true);
    }
    const read = await run(['tcpdump', '-r', pcap, '-n']);
    expect(read.stdout).toContain('ARP, Request who-has 10.9.9.5 tell 10.9.9.1');
    expect(statSync(pcap).mode & 0o777).toBe(0o600);
  });
});
