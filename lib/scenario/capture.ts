import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BareLab } from '../engine/lab-types.js';
import { InfraError } from '../errors.js';
import { REACH_ANY_PATH, run, withCapabilities } from '../exec.js';
import { privateDir } from '../paths.js';

/**
 * tcpdump writes each packet as it comes (-U), as root (-Z root: it opens its file in a directory
 * only root may enter, and owns no file as a user it switched to), with three capabilities: net_raw
 * for its packet socket (promiscuous mode included), setgid for the initgroups of `-Z root`, and
 * dac_read_search to reach its file in reports under a user's home directory.
 */
export function tcpdumpArgv(bridge: string, file: string): string[] {
  return withCapabilities(['net_raw', 'setgid', REACH_ANY_PATH], ['tcpdump', '-i', bridge, '-n', '-U', '-s', '0', '-Z', 'root', '-w', file]);
}

/** Where a scenario's captures go: one directory per scenario file, `exclusive/restore` as `exclusive--restore`. */
export function captureDirOf(root: string, scenario: string): string {
  return path.join(root, scenario.replaceAll('/', '--'));
}

const LISTENING_WITHIN_MS = 10_000;
/** A capture lasts as long as its scenario file, and never beyond this. */
const CAPTURE_MAX_MS = 3 * 3600_000;

/**
 * Records every network of the lab while a scenario runs, one pcap per network (tcpdump on the
 * network's bridge, in the lab's namespace). Kept when the scenario failed, deleted otherwise.
 */
export class ScenarioCapture {
  private readonly stops: { abort: AbortController; done: Promise<unknown> }[] = [];

  constructor(
    private readonly lab: BareLab,
    readonly dir: string,
  ) {}

  /**
   * Returns once every tcpdump listens (its own "listening on" line), so no packet of the scenario
   * is missed. The pcaps hold the lab's traffic in clear: made 0600 before tcpdump opens them (it
   * truncates a file that exists, keeping its mode), in a directory closed to other users.
   */
  async start(): Promise<void> {
    privateDir(this.dir);
    await Promise.all(this.lab.topology.networks.map((network) => this.startOne(network.bridge, path.join(this.dir, `${network.name}.pcap`))));
  }

  private async startOne(bridge: string, file: string): Promise<void> {
    writeFileSync(file, '', { mode: 0o600 });
    const abort = new AbortController();
    let listening!: () => void;
    const ready = new Promise<void>((resolve) => (listening = resolve));
    const done = run([...this.lab.network.netnsPrefix, ...tcpdumpArgv(bridge, file)], {
      abort: abort.signal,
      timeout: CAPTURE_MAX_MS,
      allowFailure: true,
      onLine: (line) => /listening on/.test(line) && listening(),
    }).catch((error: Error) => error);
    this.stops.push({ abort, done });
    const outcome = await Promise.race([
      ready.then(() => 'ready' as const),
      done.then((result) => (result instanceof Error ? result.message : `tcpdump exited ${(result as { exitCode: number }).exitCode}: ${(result as { stderr: string }).stderr}`)),
      new Promise<string>((resolve) => setTimeout(() => resolve(`tcpdump was not listening on ${bridge} within ${LISTENING_WITHIN_MS} ms`), LISTENING_WITHIN_MS).unref()),
    ]);
    if (outcome !== 'ready') throw new InfraError(`capture of ${bridge} did not start: ${outcome}`);
  }

  /** Ends every tcpdump; the pcaps stay when `keep`, else they go with their directory. */
  async stop(keep: boolean): Promise<void> {
    for (const { abort } of this.stops) abort.abort();
    await Promise.all(this.stops.map((s) => s.done));
    if (!keep && existsSync(this.dir)) rmSync(this.dir, { recursive: true, force: true });
  }
}
