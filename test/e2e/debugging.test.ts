import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBareLab } from '../../lib/engine/lab.js';
import { FAST, poll } from '../../lib/wait.js';
import { hostTraces, lab, labOk, repoRoot, STATE_ROOT, uniqueName } from './helpers.js';

/** The debugging loop on one default lab: checkpoints, bisect, link faults, captures, record, graph. */
const name = uniqueName('dbg');
const dir = mkdtempSync(path.join(tmpdir(), 'lab-debug-'));
const config = path.join(dir, 'lab.config.json');
const run = (...args: string[]) => labOk(['--config', config, ...args]);
const exec = (machine: string, ...argv: string[]) => run('exec', machine, '--', ...argv);
const fails = async (machine: string, ...argv: string[]) => (await lab(['--config', config, 'exec', machine, '--', ...argv])).exitCode !== 0;

const readState = (lab: string) => JSON.parse(readFileSync(path.join(STATE_ROOT, lab, 'state.json'), 'utf8')) as { machines: Record<string, { rootStage?: string }> };

beforeAll(async () => {
  writeFileSync(config, JSON.stringify({ name }));
  await run('up');
});

afterAll(async () => {
  await lab(['destroy', '--config', config]);
  expect(hostTraces(name)).toEqual([]);
});

describe('checkpoints of the whole lab', () => {
  it('save every machine at once and bring them all back, running; an earlier stage removes them again', async () => {
    await exec('gw', 'sh', '-c', 'echo gw-marker > /root/marker');
    await exec('web', 'sh', '-c', 'echo web-marker > /root/marker');
    const saved = JSON.parse(await run('checkpoint', 'save', 'markers', '--json')) as { machines: { name: string; running: boolean }[]; frozen: boolean };
    expect(saved.machines.map((m) => m.name).sort()).toEqual(['gw', 'web', 'web-silicon']);
    expect(saved.frozen).toBe(true);

    await exec('gw', 'rm', '/root/marker');
    await exec('web', 'sh', '-c', 'echo changed > /root/marker');
    const restored = JSON.parse(await run('restore', 'markers', '--json')) as { checkpoint: string; restored: { machine: string; bootMs?: number }[] };
    expect(restored.checkpoint).toBe('markers');
    expect(restored.restored.every((r) => r.bootMs !== undefined)).toBe(true);
    expect(await exec('gw', 'cat', '/root/marker')).toBe('gw-marker\n');
    expect(await exec('web', 'cat', '/root/marker')).toBe('web-marker\n');
    // Restored machines work together: web-silicon got its address from gw again, and resolves.
    expect((await exec('web-silicon', 'getent', 'hosts', `gw.prolo`)).trim()).toMatch(/^10\.224\.0\.254\s/);

    await run('restore', 'system');
    expect(await fails('gw', 'test', '-e', '/root/marker')).toBe(true);
    expect(await fails('web', 'test', '-e', '/root/marker')).toBe(true);
    await run('up');
    expect(await fails('web', 'test', '-e', '/root/marker')).toBe(true); // lab up brings stages, never a checkpoint
    expect(await exec('web', 'systemctl', 'is-active', 'haproxy')).toBe('active\n');

    const listed = JSON.parse(await run('checkpoint', 'list', '--json')) as { name: string }[];
    expect(listed.map((c) => c.name)).toEqual(['markers']);
    await run('checkpoint', 'delete', 'markers');
    expect(JSON.parse(await run('checkpoint', 'list', '--json'))).toEqual([]);
  });

  it('refuse names that collide or do not exist, before anything changes', async () => {
    const collide = await lab(['--config', config, 'checkpoint', 'save', 'haproxy']);
    expect(collide.exitCode).toBe(2);
    expect(collide.stderr).toContain("checkpoint name 'haproxy' is the name of a stage");
    const bad = await lab(['--config', config, 'checkpoint', 'save', 'Bad_Name']);
    expect(bad.exitCode).toBe(2);
    const unknown = await lab(['--config', config, 'restore', 'nosuch']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain("unknown stage or checkpoint 'nosuch'");
    const deleteUnknown = await lab(['--config', config, 'checkpoint', 'delete', 'nosuch']);
    expect(deleteUnknown.exitCode).toBe(2);
    expect(deleteUnknown.stderr).toContain("unknown checkpoint 'nosuch'");
  });
});

interface Status {
  machines: { name: string; state: string; rootStage?: string }[];
}
const rootStages = async () => Object.fromEntries((JSON.parse(await run('status', '--json')) as Status).machines.map((m) => [m.name, `${m.state}:${m.rootStage}`]));

describe('lab bisect', () => {
  it("finds where the proxy scenario starts passing along web's stages, and puts the lab back as it was", async () => {
    await exec('web', 'sh', '-c', 'echo before-bisect > /root/marker');
    const before = await rootStages();
    const report = JSON.parse(await run('bisect', 'proxy', 'web', '--json')) as {
      steps: { label: string; outcome: string }[];
      boundary: { until: string; from: string; before: string; after: string };
      runs: number;
    };
    expect(report.boundary).toEqual({ until: 'web@haproxy', from: 'web@proxy', before: 'failed', after: 'passed' });
    expect(report.steps.map((s) => `${s.label}:${s.outcome}`)).toEqual(['web@system:failed', 'web@haproxy:failed', 'web@proxy:passed']);
    expect(await exec('web', 'cat', '/root/marker')).toBe('before-bisect\n'); // back exactly as it was, not to a stage
    expect(await rootStages()).toEqual(before);
    expect(JSON.parse(await run('checkpoint', 'list', '--json'))).toEqual([]); // its way back is gone
  });

  it('over the whole lab, restores fewer stages than there are', async () => {
    const report = JSON.parse(await run('bisect', 'proxy', '--json')) as { steps: { outcome: string }[]; boundary: { until: string; from: string }; runs: number };
    expect(report.boundary).toMatchObject({ until: 'haproxy', from: 'proxy' });
    expect(report.runs).toBeLessThan(report.steps.length);
    expect(report.steps.some((s) => s.outcome === 'not run')).toBe(true);
  });

  it('between --good and --bad (a stage and a checkpoint) runs only those points, each with its progress line; refuses ends out of order', async () => {
    await run('checkpoint', 'save', 'built');
    const result = await lab(['--config', config, 'bisect', 'proxy', 'web', '--good', 'haproxy', '--bad', 'built']);
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toContain('bisect: web@haproxy: failed');
    expect(result.stderr).toContain('bisect: web@proxy: passed');
    expect(result.stdout).toMatch(/web@system\s+not run/);
    expect(result.stdout).toContain('proxy: fails up to web@haproxy, passes from web@proxy on');
    const reversed = await lab(['--config', config, 'bisect', 'proxy', 'web', '--good', 'built', '--bad', 'web@system']);
    expect(reversed.exitCode).toBe(2);
    expect(reversed.stderr).toContain('--good web@proxy must come before --bad web@system');
    await run('checkpoint', 'delete', 'built');
  });

  it('refuses an unknown scenario or machine, naming the valid ones', async () => {
    const scenario = await lab(['--config', config, 'bisect', 'nosuch']);
    expect(scenario.exitCode).toBe(2);
    expect(scenario.stderr).toContain("unknown scenario 'nosuch' (valid: connectivity, dns,");
    const machine = await lab(['--config', config, 'bisect', 'proxy', 'nosuch']);
    expect(machine.exitCode).toBe(2);
    expect(machine.stderr).toContain("unknown machine 'nosuch' (valid: gw, web-silicon, web)");
  });

  it('interrupted with Ctrl-C, still puts the lab back', async () => {
    await exec('gw', 'sh', '-c', 'echo before-interrupt > /root/marker');
    const before = await rootStages();
    const child = execa('node', [path.join(repoRoot, 'bin', 'lab.js'), '--config', config, 'bisect', 'proxy'], { reject: false });
    // Interrupted once it has restored the lab to its first stage: gw runs a root of that stage.
    await poll('bisect to restore gw to its first stage', () => readState(name).machines.gw?.rootStage === 'system', { within: 60_000, every: FAST });
    child.kill('SIGINT');
    const result = await child;
    expect(result.exitCode).toBe(130);
    expect(result.stderr).toContain('put the lab back');
    expect(await exec('gw', 'cat', '/root/marker')).toBe('before-interrupt\n');
    expect(await rootStages()).toEqual(before);
    expect(JSON.parse(await run('checkpoint', 'list', '--json'))).toEqual([]);
    await exec('gw', 'rm', '/root/marker');
  });
});

const harness = path.join(repoRoot, 'dist', 'lib', 'scenario', 'index.js');
const linksScenario = `import { expect, it } from 'vitest';
import { useLab } from '${harness}';
const lab = await useLab();
const gw = lab.machine('gw');
const web = lab.machine('web');
const reaches = async () => (await gw.execute(['ping', '-c', '1', '-W', '1', 'web.prolo'])).exitCode === 0;

it('block cuts web off, unblock brings it back', async () => {
  expect(await reaches()).toBe(true);
  await web.block();
  expect(await reaches()).toBe(false);
  await web.unblock();
  expect(await reaches()).toBe(true);
});

it('leaves web cut at its end', async () => {
  await web.block();
  expect(await reaches()).toBe(false);
});

it('finds web reachable: the cut was undone after the test that made it', async () => {
  expect(await reaches()).toBe(true);
});

it('drops every packet to web with 100% loss, and clears it', async () => {
  await web.impair({ lossPercent: 100 });
  expect(await reaches()).toBe(false);
  await web.clearImpairment();
  expect(await reaches()).toBe(true);
});

const rttMs = async () => Number(/time=([0-9.]+) ms/.exec(await gw.succeed(['ping', '-c', '1', '-W', '3', 'web.prolo']))?.[1]);

it('delays packets to web, seen in the round-trip time and through the proxy; a cut link stays cut while delayed', async () => {
  await web.impair({ delayMs: 300 });
  expect(await rttMs()).toBeGreaterThanOrEqual(300);
  const [status, seconds] = (await gw.succeed(['curl', '-sSk', '-o', '/dev/null', '-w', '%{http_code} %{time_total}', 'https://silicon.prolo/'])).split(' ');
  expect(status).toBe('200');
  expect(Number(seconds)).toBeGreaterThanOrEqual(0.6); // TCP's and TLS's round trips, each 300 ms longer
  await web.block();
  expect(await reaches()).toBe(false);
});

it('carries a 10 MiB TCP stream to a delayed machine whole (segmentation offload goes through the delay)', async () => {
  await web.impair({ delayMs: 50 });
  const receiver = web.succeed(['perl', '-MIO::Socket::INET', '-e', 'my $s = IO::Socket::INET->new(LocalPort => 9000, Listen => 1, ReuseAddr => 1) or die; my $c = $s->accept; my ($n, $r, $b) = (0); $n += $r while ($r = sysread($c, $b, 65536)) > 0; print "$n\\n"'], { timeout: 60_000 });
  await web.waitUntilSucceeds(['sh', '-c', 'ss -Hltn "sport = :9000" | grep -q .'], 10_000); // listening (a probe connection would be the one it accepts)
  await gw.succeed(['perl', '-MIO::Socket::INET', '-e', 'my $c = IO::Socket::INET->new(PeerAddr => "web.prolo:9000") or die "connect: $!"; my $b = "x" x 65536; syswrite($c, $b) == 65536 or die "write: $!" for 1 .. 160; close $c'], { timeout: 60_000 });
  expect((await receiver).trim()).toBe(String(10 * 1024 * 1024));
});

it('finds web neither delayed nor cut after the test that did both', async () => {
  expect(await rttMs()).toBeLessThan(100);
});

it('refuses a setting out of range', async () => {
  await expect(web.impair({ lossPercent: 150 })).rejects.toThrow('impair: lossPercent 150 is out of range (0 to 100)');
});
`;

describe('link faults in scenarios', () => {
  it('cut, restore and impair a link, each undone after its test', async () => {
    const scenarios = path.join(dir, 'link-scenarios');
    mkdirSync(scenarios, { recursive: true });
    writeFileSync(path.join(scenarios, 'links.test.ts'), linksScenario);
    const reports = path.join(dir, 'link-reports');
    const result = await lab(['--config', config, 'test', '--scenarios', scenarios, '--reports', reports, '--json']);
    const report = JSON.parse(result.stdout) as { scenarios: { tests: { name: string; outcome: string; errors: { message: string }[] }[] }[] };
    const outcomes = Object.fromEntries(report.scenarios[0]!.tests.map((t) => [t.name, t.errors.length ? `${t.outcome}: ${t.errors[0]!.message}` : t.outcome]));
    expect(outcomes).toEqual({
      'block cuts web off, unblock brings it back': 'passed',
      'leaves web cut at its end': 'passed',
      'finds web reachable: the cut was undone after the test that made it': 'passed',
      'drops every packet to web with 100% loss, and clears it': 'passed',
      'delays packets to web, seen in the round-trip time and through the proxy; a cut link stays cut while delayed': 'passed',
      'carries a 10 MiB TCP stream to a delayed machine whole (segmentation offload goes through the delay)': 'passed',
      'finds web neither delayed nor cut after the test that did both': 'passed',
      'refuses a setting out of range': 'passed',
    });
    expect(result.exitCode).toBe(0);
    const tables = await execa('ip', ['netns', 'exec', `lab-${name}`, 'nft', 'list', 'tables', 'bridge']);
    expect(tables.stdout).toBe('');
    // Where the kernel lacks netem, the delay went through a relay: it is gone, and web's link is back in its bridge.
    const links = await execa('ip', ['-n', `lab-${name}`, '-o', 'link', 'show']);
    expect(links.stdout).not.toMatch(/: lr[0-9a-f]{8}[rb]@/);
    const machinePorts = links.stdout.split('\n').filter((line) => /^\d+: vb-/.test(line));
    expect(machinePorts).toHaveLength(3);
    for (const port of machinePorts) expect(port).toContain(' master vz-prolo ');
    expect(hostTraces(name).filter((t) => t.includes('/relays/'))).toEqual([]);
  });
});

describe('link faults of two scenarios running side by side', () => {
  it("neither's end undoes the other's, and a second impairment of the same link is refused while the first holds", async () => {
    const scenarios = path.join(dir, 'side-by-side');
    const sync = path.join(dir, 'side-by-side-sync');
    mkdirSync(scenarios, { recursive: true });
    mkdirSync(sync, { recursive: true });
    // Each waits on a file the other writes: run one after the other, they would time out.
    const header = `import { existsSync, writeFileSync } from 'node:fs';\nimport { expect, it } from 'vitest';\nimport { useLab } from '${harness}';\nimport { NORMAL, poll } from '${path.join(repoRoot, 'lib', 'wait.js')}';\nconst lab = await useLab();\nconst gw = lab.machine('gw');\nconst web = lab.machine('web');\nconst after = (mark: string) => poll(mark, () => existsSync('${sync}/' + mark), { within: 60_000, every: NORMAL });\nconst rttMs = async () => Number(/time=([0-9.]+) ms/.exec(await gw.succeed(['ping', '-c', '1', '-W', '3', 'web.prolo']))?.[1]);\n`;
    writeFileSync(
      path.join(scenarios, 'slow.test.ts'),
      `${header}it('keeps web delayed while the other scenario cuts it and ends', async () => {\n  await web.impair({ delayMs: 200 });\n  writeFileSync('${sync}/delayed', '');\n  await after('cut-undone');\n  expect(await rttMs()).toBeGreaterThanOrEqual(200);\n});\n`,
    );
    writeFileSync(
      path.join(scenarios, 'cut.test.ts'),
      `${header}it('cuts web, and may not impair it too', async () => {\n  await after('delayed');\n  await expect(web.impair({ delayMs: 10 })).rejects.toThrow(/impaired by another scenario running now/);\n  await web.block();\n  expect((await gw.execute(['ping', '-c', '1', '-W', '1', 'web.prolo'])).exitCode).not.toBe(0);\n});\nit('finds its cut undone', async () => {\n  expect(await rttMs()).toBeGreaterThanOrEqual(200);\n  writeFileSync('${sync}/cut-undone', '');\n});\n`,
    );
    const result = await lab(['--config', config, 'test', '--scenarios', scenarios, '--reports', path.join(dir, 'side-by-side-reports'), '--json']);
    const report = JSON.parse(result.stdout) as { scenarios: { name: string; tests: { name: string; outcome: string; errors: { message: string }[] }[] }[] };
    const outcomes = Object.fromEntries(report.scenarios.flatMap((sc) => sc.tests.map((t) => [`${sc.name}: ${t.name}`, t.errors.length ? `${t.outcome}: ${t.errors[0]!.message}` : t.outcome])));
    expect(outcomes).toEqual({
      'cut: cuts web, and may not impair it too': 'passed',
      'cut: finds its cut undone': 'passed',
      'slow: keeps web delayed while the other scenario cuts it and ends': 'passed',
    });
    expect(result.exitCode).toBe(0);
    expect((await execa('ip', ['netns', 'exec', `lab-${name}`, 'nft', 'list', 'tables', 'bridge'])).stdout).toBe('');
    expect(hostTraces(name).filter((t) => t.includes('/relays/') || t.includes('/faults/'))).toEqual([]);
  });
});

describe('lab test --capture', () => {
  it("keeps a failing scenario's pcap, with its traffic, and deletes a passing one's", async () => {
    const scenarios = path.join(dir, 'capture-scenarios');
    mkdirSync(scenarios, { recursive: true });
    const header = `import { expect, it } from 'vitest';\nimport { useLab } from '${harness}';\nconst lab = await useLab();\nconst gw = lab.machine('gw');\n`;
    writeFileSync(path.join(scenarios, 'quiet.test.ts'), `${header}it('passes', async () => { await gw.ping('web-silicon'); });\n`);
    writeFileSync(path.join(scenarios, 'broken.test.ts'), `${header}it('fails after pinging web', async () => {\n  await gw.succeed(['ping', '-c', '2', '-p', 'c0ffee', 'web.prolo']);\n  expect('what web said').toBe('something else');\n});\n`);
    const reports = path.join(dir, 'capture-reports');
    const result = await lab(['--config', config, 'test', '--capture', '--scenarios', scenarios, '--reports', reports, '--json']);
    expect(result.exitCode).toBe(1);
    const report = JSON.parse(result.stdout) as { reportDir: string; scenarios: { name: string; outcome: string; captures?: string[] }[] };
    const byName = Object.fromEntries(report.scenarios.map((s) => [s.name, s]));
    expect(byName.broken).toMatchObject({ outcome: 'failed', captures: ['captures/broken/prolo.pcap'] });
    expect(byName.quiet).toMatchObject({ outcome: 'passed' });
    expect(byName.quiet!.captures).toBeUndefined();
    expect(existsSync(path.join(report.reportDir, 'captures', 'quiet'))).toBe(false);
    // The echo requests to web, with the payload pattern the scenario gave, are in the capture.
    const web = (await exec('web', 'ip', '-4', '-o', 'addr', 'show', 'host0')).match(/inet ([0-9.]+)/)![1];
    const read = await execa('tcpdump', ['-r', path.join(report.reportDir, 'captures', 'broken', 'prolo.pcap'), '-n', '-X', 'icmp', 'and', 'dst', web!]);
    expect(read.stdout).toContain(`> ${web}: ICMP echo request`);
    expect(read.stdout).toContain('c0ff ee');
    expect(readFileSync(path.join(report.reportDir, 'report.html'), 'utf8')).toContain('<a href="captures/broken/prolo.pcap">prolo.pcap</a>');
    // The capture holds the lab's traffic in clear: root's alone, the run's directory too.
    const pcap = path.join(report.reportDir, 'captures', 'broken', 'prolo.pcap');
    expect(statSync(report.reportDir).mode & 0o777).toBe(0o700);
    for (const file of [pcap, path.join(report.reportDir, 'results.json'), path.join(report.reportDir, 'junit.xml')]) expect(statSync(file).mode & 0o777, file).toBe(0o600);
    const asNobody = await execa('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'cat', pcap], { reject: false });
    expect(asNobody.exitCode).not.toBe(0);
    expect(asNobody.stderr).toContain('Permission denied');
  });
});

describe('lab graph', () => {
  const chromium = () => ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', `--user-data-dir=${mkdtempSync(path.join(tmpdir(), 'chromium-'))}`];

  it('prints the topology as Mermaid', async () => {
    const mermaid = await run('graph');
    expect(mermaid).toMatch(/^flowchart TB$/m);
    expect(mermaid).toContain('m_gw["gw<br/><i>DNS/DHCP</i>"]');
    expect(mermaid).toContain('m_gw ---|"host0 10.224.0.254 (default route)"| net_prolo');
    expect(mermaid).toContain('m_web ---|"host0 DHCP (default route)"| net_prolo');
  });

  for (const [label, configFile] of [
    ['the default lab', () => config],
    ['examples/sadm', () => path.join(repoRoot, 'examples', 'sadm', 'lab.config.yaml')],
  ] as const) {
    it(`draws ${label} as a page that renders in Chromium`, async () => {
      const page = path.join(dir, `graph-${label.replace(/\W+/g, '-')}.html`);
      await labOk(['--config', configFile(), 'graph', '--output', page]);
      const dom = await execa('chromium', [...chromium(), '--dump-dom', `file://${page}`], { timeout: 60_000 });
      const machines = label === 'examples/sadm' ? ['gw', 'web', 'rhfs', 'r00p01', 'r00p02', 'alien01'] : ['gw', 'web-silicon', 'web'];
      for (const machine of machines) expect(dom.stdout).toContain(`>${machine}</text>`);
      if (label === 'examples/sadm') {
        expect(dom.stdout).toContain('routes servers, users, alien');
        expect(dom.stdout).toContain('host1 192.168.0.20');
      }
      const screenshot = page.replace(/\.html$/, '.png');
      await execa('chromium', [...chromium(), `--screenshot=${screenshot}`, '--window-size=1400,700', `file://${page}`], { timeout: 60_000 });
      expect(statSync(screenshot).size).toBeGreaterThan(10_000);
    });
  }

  it('refuses an output it cannot write', async () => {
    const result = await lab(['--config', config, 'graph', '--output', path.join(dir, 'graph.png')]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('use a .svg, .html or .mmd file');
  });
});

describe('lab record', () => {
  it("writes a scenario of gw as it is, which passes against gw", async () => {
    const scenarios = path.join(dir, 'recorded');
    mkdirSync(scenarios, { recursive: true });
    const file = path.join(scenarios, 'gw-recorded.test.ts');
    await run('record', 'gw', '--file', '/etc/hostname', '--output', file);
    const scenario = readFileSync(file, 'utf8');
    expect(scenario).toContain("'dnsmasq.service'");
    expect(scenario).toMatch(/listens on UDP port %i[\s\S]*toListenOn\(port, 'udp'\)/);
    expect(scenario).toContain("toContain(' 10.224.0.254/24 ')");
    expect(scenario).toContain("'/etc/hostname'");
    const reports = path.join(dir, 'recorded-reports');
    const result = await lab(['--config', config, 'test', '--scenarios', scenarios, '--reports', reports, '--json']);
    const report = JSON.parse(result.stdout) as { passed: number; failed: number };
    expect(report.failed).toBe(0);
    expect(report.passed).toBeGreaterThanOrEqual(6);
    expect(result.exitCode).toBe(0);

    // And it can fail: a changed file is seen.
    await exec('gw', 'sh', '-c', 'echo renamed > /etc/hostname');
    const changed = await lab(['--config', config, 'test', '--scenarios', scenarios, '--reports', reports, '--json']);
    expect((JSON.parse(changed.stdout) as { failed: number }).failed).toBe(1);
    await exec('gw', 'sh', '-c', 'echo gw > /etc/hostname');
  });

  it('--lab writes the whole lab as one scenario, which passes as written and sees a stopped service', async () => {
    const scenarios = path.join(dir, 'recorded-lab');
    mkdirSync(scenarios, { recursive: true });
    const file = path.join(scenarios, 'lab-recorded.test.ts');
    await run('record', '--lab', '--file', 'web:/etc/haproxy/haproxy.cfg', '--output', file);
    const scenario = readFileSync(file, 'utf8');
    expect(scenario.match(/^describe\('(.*) as recorded'/gm)).toEqual(["describe('gw as recorded'", "describe('web-silicon as recorded'", "describe('web as recorded'"]);
    expect(scenario).toContain("'haproxy.service'");
    expect(scenario).toContain("'/etc/haproxy/haproxy.cfg'");
    const reports = path.join(dir, 'recorded-lab-reports');
    const result = await lab(['--config', config, 'test', '--scenarios', scenarios, '--reports', reports, '--json']);
    const report = JSON.parse(result.stdout) as { passed: number; failed: number };
    expect(report).toMatchObject({ failed: 0 });
    expect(report.passed).toBeGreaterThanOrEqual(15);
    await exec('web', 'systemctl', 'stop', 'haproxy');
    const stopped = await lab(['--config', config, 'test', '--scenarios', scenarios, '--reports', reports, '--json']);
    expect((JSON.parse(stopped.stdout) as { failed: number }).failed).toBeGreaterThanOrEqual(3); // the service, and its ports 80 and 443
    await exec('web', 'systemctl', 'start', 'haproxy');
    const bad = await lab(['--config', config, 'record', '--lab', '--file', '/etc/hostname']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('--file /etc/hostname: with --lab, say which machine');
  });

  it('refuses a file the machine does not have, and a machine the lab does not have', async () => {
    const missing = await lab(['--config', config, 'record', 'gw', '--file', '/etc/nosuch']);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain('/etc/nosuch: No such file or directory (in gw)');
    const unknown = await lab(['--config', config, 'record', 'nosuch']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain("unknown machine 'nosuch'");
  });
});

describe('a link relay left behind', () => {
  it('is listed by lab doctor, and ended by lab destroy with its ports (afterAll finds nothing of the lab)', async () => {
    // What a scenario worker killed in the middle of a delayed test leaves, where the kernel lacks netem.
    const opened = await openBareLab({ file: config });
    const ports = (await execa('ip', ['-n', `lab-${name}`, '-o', 'link', 'show', 'master', 'vz-prolo'])).stdout;
    const link = /^\d+: (vb-[^@:]+)/m.exec(ports)?.[1];
    expect(link).toBeDefined();
    await opened.faults.relays.start(link!, { delayMs: 1, jitterMs: 0, lossPercent: 0 });
    const doctor = JSON.parse(await run('doctor', '--json')) as { leftovers: string[] };
    expect(doctor.leftovers).toContainEqual(expect.stringMatching(new RegExp(`^link ${link} relayed \\(delay without netem\\), relay pid \\d+$`)));
    expect(hostTraces(name).filter((t) => t.includes('/relays/'))).toHaveLength(1);
  });
});
