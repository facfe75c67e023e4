import { execa } from 'execa';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectLabTestPasses, hostTraces, lab, labOk, repoRoot, STATE_ROOT, uniqueName } from './helpers.js';

const name = uniqueName('e2e');
const exec = (machine: string, ...argv: string[]) => labOk(['exec', '--name', name, machine, '--', ...argv]);
const bin = path.join(repoRoot, 'bin', 'lab.js');
const repl = (script: string, lab = name) => execa(process.execPath, [bin, 'repl', '--name', lab], { input: script, reject: false, stripFinalNewline: false });

/** A scenario of the verbs that change machines: an exclusive one. */
const verbsScenario = `import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { useLab } from '${path.join(repoRoot, 'dist', 'lib', 'scenario', 'index.js')}';
const lab = await useLab();
const web = lab.machine('web');
const status = () => JSON.parse(execFileSync(process.execPath, ['${bin}', 'status', '--json', '--name', lab.lab.config.name], { encoding: 'utf8' }));
const stateOf = (machine: string) => status().machines.find((m: { name: string }) => m.name === machine).state;

it('crash cuts the power: web stopped, lab status says so, its root as it was; start boots it from there', async () => {
  await web.succeed('echo before-crash > /root/crash-marker');
  await web.crash();
  expect(stateOf('web')).toBe('stopped');
  await expect(web.execute('true')).rejects.toThrow('machine web is not running');
  await web.start();
  expect(stateOf('web')).toBe('running');
  expect(await web.succeed('cat /root/crash-marker')).toBe('before-crash\\n');
  await web.waitForOpenPort(443);
});

it('reboot stops web in order and boots it again: its /run is new', async () => {
  await web.succeed('touch /run/before-reboot');
  await web.reboot();
  await web.fail('test -e /run/before-reboot');
  await web.waitForUnit('haproxy');
});

it('during fails as soon as haproxy stops mid-test', async () => {
  const started = Date.now();
  const body = async () => {
    await web.succeed('systemctl stop haproxy');
    await web.waitForFile('/run/body-may-end', 20_000);
  };
  await expect(lab.during(() => web.succeed('systemctl is-active haproxy'), body)).rejects.toThrow(/^during: the invariant broke \\d+ ms into the body: web: command should have succeeded/);
  expect(Date.now() - started).toBeLessThan(10_000);
  await web.succeed('touch /run/body-may-end && systemctl start haproxy');
  await web.waitForOpenPort(443);
});

it('waits for a file, for a command to fail, for a port to close', async () => {
  // Later, from a unit of the machine's own (a timer would fire within its minute of accuracy).
  await web.succeed("systemd-run /bin/sh -c 'sleep 0.3 && touch /run/later'");
  await web.waitForFile('/run/later');
  await web.succeed("systemd-run /bin/sh -c 'sleep 0.3 && systemctl stop haproxy'");
  await web.waitUntilFails('systemctl is-active haproxy');
  await web.waitForClosedPort(443);
  await web.succeed('systemctl start haproxy');
  await web.waitForOpenPort(443);
});

it('copies a tree into web and back out', async () => {
  const tree = path.join(mkdtempSync(path.join(tmpdir(), 'lab-verbs-')), 'tree');
  mkdirSync(path.join(tree, 'sub'), { recursive: true });
  writeFileSync(path.join(tree, 'sub', 'file'), 'from the host\\n');
  expect(await web.copyToMachine(tree, '/root/')).toMatchObject({ to: 'web:/root/tree', files: 1, directories: 2 });
  expect(await web.succeed('cat /root/tree/sub/file')).toBe('from the host\\n');
  await web.succeed('echo from-web > /root/tree/sub/back');
  const out = mkdtempSync(path.join(tmpdir(), 'lab-verbs-'));
  await web.copyFromMachine('/root/tree', out);
  expect(readFileSync(path.join(out, 'tree', 'sub', 'back'), 'utf8')).toBe('from-web\\n');
});
`;

interface Status {
  machines: { name: string; state: string; address: string; stagesDone: string[]; stagesPending: string[] }[];
}

describe('lab up: the default lab, for real, in sandbox mode', () => {
  let status: Status;
  const address = (machine: string) => status.machines.find((m) => m.name === machine)!.address;

  beforeAll(async () => {
    await labOk(['up', '--name', name]);
    status = JSON.parse(await labOk(['status', '--name', name, '--json'])) as Status;
  });

  afterAll(async () => {
    await lab(['destroy', '--name', name]); // also when a test failed
  });

  it('runs three machines with every stage done', () => {
    expect(status.machines.map((m) => [m.name, m.state])).toEqual([
      ['gw', 'running'],
      ['web-silicon', 'running'],
      ['web', 'running'],
    ]);
    expect(status.machines.map((m) => m.stagesDone.join(','))).toEqual(['system,dns', 'system,nginx,site', 'system,haproxy,proxy']);
    expect(address('gw')).toBe('10.224.0.254');
    for (const machine of ['web', 'web-silicon']) expect(address(machine)).toMatch(/^10\.224\.0\.\d+$/);
  });

  it('resolves every machine by name through gw', async () => {
    for (const from of ['gw', 'web', 'web-silicon']) {
      for (const to of ['gw', 'web', 'web-silicon']) {
        const answer = await exec(from, 'getent', 'hosts', `${to}.prolo`);
        expect(answer.split(/\s+/)[0], `${from} resolving ${to}`).toBe(address(to));
      }
    }
    expect((await exec('web-silicon', 'getent', 'hosts', 'silicon.prolo')).split(/\s+/)[0]).toBe(address('web'));
  });

  it("routes https://silicon.prolo/ by SNI through web's haproxy to web-silicon", async () => {
    const page = await exec('gw', 'curl', '-sSk', '-w', '\\n%{remote_ip}', 'https://silicon.prolo/');
    expect(page).toContain('<h1>silicon.prolo</h1>');
    expect(page).toContain(`Served by web-silicon of lab ${name}.`);
    expect(page.trim().split('\n').at(-1)).toBe(address('web')); // the connection went to the proxy, not to web-silicon
  });

  it('answers http://silicon.prolo/ with 301 to https', async () => {
    const reply = await exec('gw', 'curl', '-sS', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', 'http://silicon.prolo/');
    expect(reply).toBe('301 https://silicon.prolo/');
  });

  it('has dnsmasq, haproxy and nginx active', async () => {
    expect((await exec('gw', 'systemctl', 'is-active', 'dnsmasq')).trim()).toBe('active');
    expect((await exec('web', 'systemctl', 'is-active', 'haproxy')).trim()).toBe('active');
    expect((await exec('web-silicon', 'systemctl', 'is-active', 'nginx')).trim()).toBe('active');
  });

  it('reaches the simulated internet, seen there with the uplink address (NAT)', async () => {
    expect((await exec('web', 'curl', '-sS', 'http://198.51.100.1/')).trim()).toBe('198.51.100.2');
  });

  it('opens a shell in a machine that reads its input and ends with its exit code', async () => {
    const shell = await execa(process.execPath, [path.join(repoRoot, 'bin', 'lab.js'), 'shell', '--name', name, 'web-silicon'], {
      input: 'hostname\ncat /etc/hostname\nexit 5\n',
      reject: false,
    });
    expect(shell.exitCode).toBe(5);
    expect(shell.stdout).toContain('web-silicon\nweb-silicon');
  });

  it('passes exit codes through lab exec', async () => {
    const result = await lab(['exec', '--name', name, 'web', '--', 'sh', '-c', 'exit 7']);
    expect(result.exitCode).toBe(7);
  });

  it('refuses an argument a verb has no place for (lab down web), and stops nothing', async () => {
    const result = await lab(['down', '--name', name, 'web']);
    expect(result.exitCode, result.stderr).toBe(2);
    expect(result.stderr).toContain('lab down takes no argument (given: web)');
    const status = JSON.parse(await labOk(['status', '--name', name, '--json'])) as { machines: { state: string }[] };
    expect(status.machines.map((m) => m.state)).toEqual(['running', 'running', 'running']);
  });

  it('keeps one read-only snapshot per stage', async () => {
    const snapshots = path.join(STATE_ROOT, name, 'pool', 'snapshots');
    const found: string[] = [];
    for (const machine of readdirSync(snapshots)) {
      for (const snapshot of readdirSync(path.join(snapshots, machine)).filter((s) => !s.endsWith('.json'))) {
        const ro = await execa('btrfs', ['property', 'get', '-ts', path.join(snapshots, machine, snapshot), 'ro']);
        expect(ro.stdout.trim(), snapshot).toBe('ro=true');
        found.push(`${machine}/${snapshot.split('@')[0]}`);
      }
    }
    expect(found.sort()).toEqual(
      ['gw/system', 'gw/dns', 'web-silicon/system', 'web-silicon/nginx', 'web-silicon/site', 'web/system', 'web/haproxy', 'web/proxy'].sort(),
    );
  });

  it('does nothing more when run again with everything cached and running', async () => {
    const report = JSON.parse(await labOk(['up', '--name', name, '--json'])) as { machines: { booted: boolean; stages: { action: string }[] }[] };
    expect(report.machines.every((m) => !m.booted && m.stages.every((s) => s.action === 'cached'))).toBe(true);
  });

  it('passes the default scenarios with lab test, reports included', async () => {
    await expectLabTestPasses(['--name', name], mkdtempSync(path.join(tmpdir(), 'lab-reports-')));
    // The restore scenario put web back with its own lab up: the lab is as it was, nothing to redo.
    const report = JSON.parse(await labOk(['up', '--name', name, '--json'])) as { machines: { booted: boolean; stages: { action: string }[] }[] };
    expect(report.machines.map((m) => m.booted)).toEqual([false, false, false]);
    expect(report.machines.flatMap((m) => m.stages.map((s) => s.action))).not.toContain('build');
  });

  it('copies files and trees out of a machine and into it with lab cp, resolving links inside it and refusing one that leads out', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-cp-'));
    await labOk(['cp', '--name', name, 'web:/etc/haproxy/haproxy.cfg', dir]);
    expect(readFileSync(path.join(dir, 'haproxy.cfg'), 'utf8')).toContain('use_backend web-silicon');
    mkdirSync(path.join(dir, 'tree', 'sub'), { recursive: true });
    writeFileSync(path.join(dir, 'tree', 'sub', 'file'), 'into web\n');
    expect(await labOk(['cp', '--name', name, path.join(dir, 'tree'), 'web:/root/'])).toBe('copied to web:/root/tree: 1 file, 2 directories, 0 links\n');
    expect(await exec('web', 'cat', '/root/tree/sub/file')).toBe('into web\n');
    // /run is the machine's own tmpfs: seen through the running machine, not in its root on the host.
    await exec('web', 'sh', '-c', 'mkdir -p /run/lab-cp && echo in-run > /run/lab-cp/f && ln -s /etc /root/abs && ln -s ../../../../../../../../../../etc /root/escape');
    await labOk(['cp', '--name', name, 'web:/run/lab-cp', dir]);
    expect(readFileSync(path.join(dir, 'lab-cp', 'f'), 'utf8')).toBe('in-run\n');
    await labOk(['cp', '--name', name, 'web:/root/abs/hostname', path.join(dir, 'hostname')]);
    expect(readFileSync(path.join(dir, 'hostname'), 'utf8')).toBe('web\n'); // the machine's /etc, not the host's
    for (const args of [['web:/root/escape/hostname', dir], [path.join(dir, 'tree'), 'web:/root/escape/']]) {
      const refused = await lab(['cp', '--name', name, ...args]);
      expect(refused.exitCode, refused.stderr).toBe(2);
      expect(refused.stderr).toContain(`lab: ${args.find((a) => a.startsWith('web:'))}: the link /root/escape -> ../../../../../../../../../../etc leads out of the machine's root`);
    }
    const unknown = await lab(['cp', '--name', name, 'wbe:/etc/hostname', dir]);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain("wbe:/etc/hostname: unknown machine 'wbe'");
  });

  it('runs a script in lab repl line by line: machines by name, expect with the matchers; the first error ends it with 1', async () => {
    const ok = await repl(
      ["const name = await web.succeed('hostname')", 'name', 'await webSilicon.succeed(`cat /etc/hostname`)', "await machines['web-silicon'].succeed('hostname')", "await expect(gw).toHaveServiceEnabledAndActive('dnsmasq')", "lab.machineNames.join(' ')"].join('\n'),
    );
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toBe('web\nweb-silicon\nweb-silicon\ngw web-silicon web\n');
    expect(ok.exitCode).toBe(0);
    const failing = await repl("await web.succeed('exit 3')\nawait web.succeed('hostname')\n");
    expect(failing.exitCode).toBe(1);
    expect(failing.stdout).toContain('web: command should have succeeded\n$ exit 3\nexit code 3');
    expect(failing.stdout).not.toMatch(/^web$/m); // the line after the failure did not run
    const notUp = await repl("await web.succeed('hostname')", uniqueName('vrbdown'));
    expect(notUp.exitCode).toBe(3);
    expect(notUp.stderr).toMatch(/lab: lab \S+ is not up: none of its machines runs/);
  });

  it('crashes, starts, reboots and watches machines from scenarios, copies files with them, and refuses a crash outside exclusive/', async () => {
    const scenarios = mkdtempSync(path.join(tmpdir(), 'lab-verbs-'));
    mkdirSync(path.join(scenarios, 'exclusive'));
    const reports = path.join(scenarios, 'reports');
    writeFileSync(path.join(scenarios, 'exclusive', 'verbs.test.ts'), verbsScenario);
    writeFileSync(
      path.join(scenarios, 'refused.test.ts'),
      `import { expect, it } from 'vitest';\nimport { useLab } from '${path.join(repoRoot, 'dist', 'lib', 'scenario', 'index.js')}';\nconst lab = await useLab();\nit('may not crash web', async () => {\n  await expect(lab.machine('web').crash()).rejects.toThrow('web.crash(): only scenarios under scenarios/exclusive/ may change machines');\n});\n`,
    );
    const run = await lab(['--name', name, 'test', '--scenarios', scenarios, '--reports', reports, '--json']);
    const report = JSON.parse(run.stdout) as { scenarios: { name: string; tests: { name: string; outcome: string; errors: { message: string }[] }[] }[] };
    const outcomes = Object.fromEntries(report.scenarios.flatMap((sc) => sc.tests.map((t) => [`${sc.name}: ${t.name}`, t.errors.length ? `${t.outcome}: ${t.errors[0]!.message}` : t.outcome])));
    expect(outcomes).toEqual({
      'refused: may not crash web': 'passed',
      'exclusive/verbs: crash cuts the power: web stopped, lab status says so, its root as it was; start boots it from there': 'passed',
      'exclusive/verbs: reboot stops web in order and boots it again: its /run is new': 'passed',
      'exclusive/verbs: during fails as soon as haproxy stops mid-test': 'passed',
      'exclusive/verbs: waits for a file, for a command to fail, for a port to close': 'passed',
      'exclusive/verbs: copies a tree into web and back out': 'passed',
    });
    expect(run.exitCode).toBe(0);
    expect(await exec('gw', 'curl', '-sSk', 'https://silicon.prolo/')).toContain('<h1>silicon.prolo</h1>'); // web is back, proxying
  });

  it('leaves nothing on the host after lab destroy', async () => {
    expect(hostTraces(name).length).toBeGreaterThan(0); // the check below can see a lab
    await labOk(['destroy', '--name', name]);
    expect(hostTraces(name)).toEqual([]);
  });
});
