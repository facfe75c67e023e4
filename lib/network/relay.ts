import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { HostDriver } from '../driver.js';
import { HostError, InfraError } from '../errors.js';
import { REACH_ANY_PATH, run, spawnDetached, tail, withCapabilities } from '../exec.js';
import { findCommand } from '../host/prereq.js';
import { packageRoot } from '../paths.js';
import { endProcess, isAlive, refOf } from '../state/process.js';
import type { ProcessRef } from '../state/state.js';
import { FAST, NORMAL, poll } from '../wait.js';

const RELAY_SCRIPT = path.join(packageRoot, 'lib', 'network', 'link-relay.py');
const START_TIMEOUT_MS = 5000;
const STOP_TIMEOUT_MS = 5000;

export interface RelaySettings {
  delayMs: number;
  jitterMs: number;
  lossPercent: number;
}

/** What a relay's file records: its process, and the bridge its link goes back to. */
interface RelayRecord {
  process: ProcessRef;
  bridge: string;
}

/** The veth pair of a link's relay: one end the relay reads and writes, the other in the bridge. Named after the lab and the link (15 characters at most). */
export function relayPorts(labName: string, link: string): { relayEnd: string; bridgeEnd: string } {
  const hash = createHash('sha256').update(`${labName}/${link}`).digest('hex').slice(0, 8);
  return { relayEnd: `lr${hash}r`, bridgeEnd: `lr${hash}b` };
}

/** The bridge a link is a port of, from `ip -o link show dev <link>`. */
export function masterOf(ipLinkLine: string): string | undefined {
  return / master (\S+)/.exec(ipLinkLine)?.[1];
}

/**
 * Link delay where the kernel has no netem: the machine's host-side port leaves its bridge, and a
 * small relay (python3, packet sockets; lib/network/link-relay.py) forwards its frames to a veth
 * pair in the bridge, holding those towards the machine. Each relay is a process of its own, whose
 * pid (with start time) and bridge are kept in a file of the lab's, so that clearing the
 * impairment, a `lab test` run's end and `lab destroy` take it out, whoever started it.
 */
export class LinkRelays implements HostDriver {
  constructor(private readonly options: { labName: string; netnsPrefix: readonly string[]; dir: string }) {}

  tools() {
    return [];
  }

  describe(): string {
    return 'link relays (delay without netem)';
  }

  /** The bridge port that stands for the link while it is relayed. */
  bridgePort(link: string): string {
    return relayPorts(this.options.labName, link).bridgeEnd;
  }

  /** `ip` in the lab's namespace; `tolerant` for undoing what may already be gone. */
  private ip(args: readonly string[], tolerant = false) {
    return run([...this.options.netnsPrefix, 'ip', ...args], { allowFailure: tolerant });
  }

  private recordFile(link: string): string {
    return path.join(this.options.dir, `${link}.json`);
  }

  private logFile(link: string): string {
    return path.join(this.options.dir, `${link}.log`);
  }

  async start(link: string, settings: RelaySettings): Promise<void> {
    const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : findCommand('python3');
    if (!python) throw new HostError('impair: delay on a kernel without netem goes through a relay that needs python3, which is missing', 'apt-get install python3');
    await this.stop(link);
    const bridge = masterOf((await this.ip(['-o', 'link', 'show', 'dev', link], true)).stdout);
    if (!bridge) throw new InfraError(`impair: link ${link} is in no bridge`);
    const { relayEnd, bridgeEnd } = relayPorts(this.options.labName, link);
    mkdirSync(this.options.dir, { recursive: true, mode: 0o700 });
    const log = this.logFile(link);
    rmSync(log, { force: true });
    try {
      await this.ip(['link', 'add', relayEnd, 'type', 'veth', 'peer', 'name', bridgeEnd]);
      await this.ip(['link', 'set', relayEnd, 'up']);
      const settingsArgs = [settings.delayMs, settings.jitterMs, settings.lossPercent].map(String);
      const record = this.recordFile(link);
      // Its packet sockets need net_raw; dac_read_search, its script in a lab installed under a home directory.
      const process = refOf(spawnDetached([...this.options.netnsPrefix, ...withCapabilities(['net_raw', REACH_ANY_PATH], [python, RELAY_SCRIPT, record, link, relayEnd, ...settingsArgs])], log));
      // Recorded before anything waits, so that a relay that never says it started is still taken out.
      if (process) writeFileSync(record, JSON.stringify({ process, bridge } satisfies RelayRecord));
      await poll(`the relay of ${link} to start`, () => {
        const said = readFileSync(log, 'utf8');
        if (said.includes('relaying ')) return true;
        if (!isAlive(process)) throw new HostError(`impair: the relay of ${link} ended at once:\n${tail(said, 10)}`);
        return false;
      }, { within: START_TIMEOUT_MS, every: FAST });
      // The machine's port leaves the bridge and the relay's pair takes its place: the bridge learns the machine's address anew from its next frame.
      await this.ip(['link', 'set', link, 'nomaster']);
      await this.ip(['link', 'set', bridgeEnd, 'master', bridge, 'up']);
      // A new port forwards only once the kernel has seen its carrier (linkwatch, up to a second later): until then, frames are lost.
      await poll(`${bridgeEnd} to forward in ${bridge}`, async () => / state forwarding /.test((await run([...this.options.netnsPrefix, 'bridge', 'link', 'show', 'dev', bridgeEnd], { allowFailure: true })).stdout), {
        within: START_TIMEOUT_MS,
        every: NORMAL,
      });
    } catch (error) {
      await this.ip(['link', 'del', relayEnd], true); // also when no record was written
      await this.stop(link);
      throw error;
    }
  }

  /** Puts the link back in its bridge and ends its relay; nothing to do when it has none. */
  async stop(link: string): Promise<void> {
    const file = this.recordFile(link);
    if (!existsSync(file)) return;
    const record = JSON.parse(readFileSync(file, 'utf8')) as RelayRecord;
    await this.ip(['link', 'del', relayPorts(this.options.labName, link).relayEnd], true); // its peer goes with it
    await this.ip(['link', 'set', link, 'master', record.bridge], true); // fails only when the machine's link is gone
    await endProcess(record.process, `the relay of ${link}`, STOP_TIMEOUT_MS);
    rmSync(file, { force: true });
    rmSync(this.logFile(link), { force: true });
  }

  private relayedLinks(): string[] {
    if (!existsSync(this.options.dir)) return [];
    return readdirSync(this.options.dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -'.json'.length));
  }

  async stopAll(): Promise<void> {
    for (const link of this.relayedLinks()) await this.stop(link);
  }

  async leftovers(): Promise<string[]> {
    return this.relayedLinks().map((link) => {
      const { process } = JSON.parse(readFileSync(this.recordFile(link), 'utf8')) as RelayRecord;
      return `link ${link} relayed (delay without netem)${isAlive(process) ? `, relay pid ${process.pid}` : ''}`;
    });
  }

  async destroy(): Promise<void> {
    await this.stopAll();
    rmSync(this.options.dir, { recursive: true, force: true });
  }
}
