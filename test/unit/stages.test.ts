import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultLab } from '../../lib/config/default.js';
import { validateConfig } from '../../lib/config/validate.js';
import { interfaceMac } from '../../lib/config/topology.js';
import { loadLab } from '../../lib/stages/load.js';
import { planLab, type StageSpec } from '../../lib/plan/plan.js';
import { parseStageHeader } from '../../lib/stages/shell.js';
import { waitReady } from '../../lib/stages/ready.js';
import { Machine } from '../../lib/machine-verbs.js';
import { treeEntries } from '../../lib/stages/content.js';
import { offlineContext } from '../../lib/stages/context.js';
import type { BuildSteps } from '../../lib/runtime/build-steps.js';
import { stageFailure } from '../../lib/engine/stage-failure.js';
import { CommandError, run } from '../../lib/exec.js';
import { PUPPET_SERVER_CONTENT, puppetServerInputs, servePuppetContent, teamContent, toolCommand, WORK_DIR } from '../../lib/stages/tools.js';
import type { LabView, StageContext } from '../../lib/stages/define.js';

describe('shell stage headers', () => {
  it('reads packages, fixtures, binds and online, exactly in the # lab: form', () => {
    const header = parseStageHeader(
      ['#!/bin/sh', '# lab: packages=nginx curl', '# lab: fixtures=web/site.conf web/index.html', '#lab: online', '# a comment', '# lab: binds=/root/sadm', 'set -e', '# lab: packages=not-a-header-any-more'].join('\n'),
      'site.sh',
    );
    expect(header).toEqual({ packages: ['nginx', 'curl'], fixtures: ['web/site.conf', 'web/index.html'], binds: ['/root/sadm'], online: true, ready: [] });
    expect(parseStageHeader('#!/bin/sh\nset -e\n', 'x.sh')).toEqual({ packages: [], fixtures: [], binds: [], online: false, ready: [] });
  });

  it('refuses an unknown key, a value for online, and a key without value, naming the line', () => {
    expect(() => parseStageHeader('#!/bin/sh\n# lab: pakages=nginx\n', 'site.sh')).toThrow("stage site.sh:2: unknown header key 'pakages' (known: packages, fixtures, binds, online, offline, timeout, ready)");
    expect(() => parseStageHeader('# lab: online=yes\n', 'x.sh')).toThrow("stage x.sh:1: 'online' takes no value");
    expect(() => parseStageHeader('# lab: packages=\n', 'x.sh')).toThrow("stage x.sh:1: 'packages' needs a value");
  });

  it('reads a timeout as a duration, and refuses one that is not, exit 2 naming the line', () => {
    expect(parseStageHeader('#!/bin/sh\n# lab: timeout=30m\n', 'x.sh').timeoutSeconds).toBe(1800);
    expect(parseStageHeader('# lab: timeout=90\n', 'x.yml').timeoutSeconds).toBe(90);
    expect(parseStageHeader('# lab: packages=x\n', 'x.pp').timeoutSeconds).toBeUndefined();
    expect(() => parseStageHeader('# lab: timeout=soon\n', 'x.sh')).toThrow("stage x.sh:1: timeout: 'soon' is not a duration");
    expect(() => parseStageHeader('# lab: timeout=0s\n', 'x.sh')).toThrow('stage x.sh:1: timeout: 0s is out of range');
    expect(() => parseStageHeader('# lab: timeout=8d\n', 'x.sh')).toThrow(expect.objectContaining({ exitCode: 2 }));
    expect(() => parseStageHeader('# lab: timeout\n', 'x.sh')).toThrow("stage x.sh:1: 'timeout' needs a value (# lab: timeout=30m)");
  });
});

describe('stage timeouts', () => {
  it("a stage whose command timed out says where its timeout is set", () => {
    const timedOut = new CommandError({ argv: ['sh'], exitCode: -1, stdout: '', stderr: '', durationMs: 900_000 }, 'timed out after 900000 ms', true);
    expect(stageFailure({ machine: 'web', stage: 'site', step: 'run', error: timedOut }).hint).toContain("'# lab: timeout=30m' in its header, timeoutSeconds in its definition, or stageLimits.timeoutSeconds");
    const failed = new CommandError({ argv: ['sh'], exitCode: 1, stdout: '', stderr: '', durationMs: 1 }, 'exit code 1');
    expect(stageFailure({ machine: 'web', stage: 'site', step: 'run', error: failed }).hint).not.toContain('timeout');
  });

  it('refuses a TypeScript stage whose timeoutSeconds is not a positive number, naming it (exit 2)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-stages-'));
    mkdirSync(path.join(dir, 'box'));
    const config = validateConfig({ ...defaultLab, stagesDir: dir, zone: { dnsMachine: null }, machines: [{ name: 'box', address: '10.224.0.5', stages: ['site'] }] });
    writeFileSync(path.join(dir, 'box', 'site.mjs'), 'export default { timeoutSeconds: 1800, run: async () => {} };\n');
    expect((await loadLab(config)).machines[0]!.stages.at(-1)!.definition.timeoutSeconds).toBe(1800);
    for (const [i, bad] of ['-5', '0', "'30m'", '1e9'].entries()) {
      // A new file each time: a module once imported is not imported again.
      mkdirSync(path.join(dir, `box${i}`));
      writeFileSync(path.join(dir, `box${i}`, 'site.mjs'), `export default { timeoutSeconds: ${bad} };\n`);
      const named = validateConfig({ ...defaultLab, stagesDir: dir, zone: { dnsMachine: null }, machines: [{ name: `box${i}`, address: '10.224.0.5', stages: ['site'] }] });
      await expect(loadLab(named)).rejects.toThrow(expect.objectContaining({ exitCode: 2, message: expect.stringContaining(`site.mjs: timeoutSeconds: ${bad === "'30m'" ? '"30m"' : bad === '1e9' ? '1000000000' : bad} is not a number of seconds`) }));
    }
  });
});

describe("the stage context's view of the lab (ctx.lab)", () => {
  it("gives a stage the domain, and every machine's MACs and addresses, its own and the others'", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-stages-'));
    mkdirSync(path.join(dir, 'box'));
    // What the stage saw, written into its root as a team's stage would write a config file.
    writeFileSync(
      path.join(dir, 'box', 'seen.mjs'),
      "export default { run: (ctx) => ctx.writeFile('/seen', JSON.stringify({ domain: ctx.lab.domain, machines: ctx.lab.topology.machines.map((m) => [m.name, m.interfaces.map((i) => [i.mac, i.address])]) })) };\n",
    );
    const config = validateConfig({
      ...defaultLab,
      stagesDir: dir,
      zone: { domain: 'prolo', dnsMachine: 'box' },
      machines: [{ name: 'box', address: '10.224.0.5', stages: ['seen'] }, { name: 'pc', kind: 'vm', address: 'dhcp' }],
    });
    const loaded = await loadLab(config);
    const box = loaded.machines[0]!;
    const root = path.join(dir, 'root');
    const target = { runner: {} as BuildSteps, root, nspawnName: 'box', fixturesDir: dir, logFile: path.join(dir, 'seen.log'), binds: [], logLimitBytes: 1024 * 1024, timeoutMs: 60_000 };
    await box.stages.find((s) => s.name === 'seen')!.definition.run!(offlineContext(target, box.view, []));
    expect(JSON.parse(readFileSync(path.join(root, 'seen'), 'utf8'))).toEqual({
      domain: 'prolo',
      machines: [['box', [[interfaceMac('box', config.zone.name, 'container'), '10.224.0.5']]], ['pc', [[interfaceMac('pc', config.zone.name, 'vm'), 'dhcp']]]],
    });
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('keys of online stages', () => {
  const spec = (machine: string, name: string, definitionHash: string, online = false): StageSpec => ({ machine, name, packages: [], definitionHash, online });
  const plan = (webSite: string) =>
    planLab({
      baseKey: 'base',
      hasSnapshot: () => true,
      machines: [
        { name: 'web', dependsOn: [], stages: [spec('web', 'site', webSite)] },
        { name: 'client', dependsOn: ['web'], stages: [spec('client', 'offline', 'o'), spec('client', 'fetch', 'f', true)] },
        { name: 'other', dependsOn: ['web'], stages: [spec('other', 'offline', 'o')] },
      ],
    });
  const keys = (p: ReturnType<typeof plan>) => Object.fromEntries(p.machines.flatMap((m) => m.stages.map((s) => [`${m.name}@${s.name}`, s.key])));

  it('change when a machine they depend on changes; offline stages of dependents do not', () => {
    const [before, after] = [keys(plan('v1')), keys(plan('v2'))];
    expect(after['web@site']).not.toBe(before['web@site']);
    expect(after['client@fetch']).not.toBe(before['client@fetch']);
    expect(after['client@offline']).toBe(before['client@offline']);
    expect(after['other@offline']).toBe(before['other@offline']);
  });
});

describe('stage files', () => {
  it('refuses two files of one stage, naming both', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-stages-'));
    mkdirSync(path.join(dir, 'box'));
    writeFileSync(path.join(dir, 'box', 'site.sh'), '#!/bin/sh\ntrue\n');
    writeFileSync(path.join(dir, 'box', 'site.mjs'), 'export default {};\n');
    const config = validateConfig({ ...defaultLab, stagesDir: dir, zone: { dnsMachine: null }, machines: [{ name: 'box', address: '10.224.0.5', stages: ['site'] }] });
    await expect(loadLab(config)).rejects.toThrow(`stage box@site: site.mjs and site.sh both define it in ${path.join(dir, 'box')}: keep one`);
  });
});

describe('fixtures', () => {
  /** A lab whose machine box has one shell stage `site` with `header`, and a fixtures directory with web/a.conf. */
  function fixtureLab(header: string) {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-fixtures-'));
    const fixturesDir = path.join(dir, 'fixtures');
    mkdirSync(path.join(dir, 'stages', 'box'), { recursive: true });
    mkdirSync(path.join(fixturesDir, 'web'), { recursive: true });
    writeFileSync(path.join(fixturesDir, 'web', 'a.conf'), 'a\n');
    writeFileSync(path.join(dir, 'stages', 'box', 'site.sh'), `#!/bin/sh\n${header}\ntrue\n`);
    const config = validateConfig({ ...defaultLab, stagesDir: path.join(dir, 'stages'), fixturesDir, zone: { dnsMachine: null }, machines: [{ name: 'box', address: '10.224.0.5', stages: ['site'] }] });
    const key = async () => (await loadLab(config)).machines[0]!.stages.find((s) => s.name === 'site')!.definitionHash;
    return { dir, fixturesDir, config, key };
  }

  it("refuses, before anything is made, a name with '..', an absolute one, or one whose link leads out of the fixtures directory", async () => {
    const escape = fixtureLab('# lab: fixtures=../../../tmp/x');
    await expect(loadLab(escape.config)).rejects.toThrow(`stage box@site: fixture '../../../tmp/x' has a '..': fixtures are named inside the fixtures directory ${escape.fixturesDir}`);
    await expect(loadLab(fixtureLab('# lab: fixtures=web/../../x').config)).rejects.toMatchObject({ exitCode: 2 });
    const absolute = fixtureLab('# lab: fixtures=/etc/shadow');
    await expect(loadLab(absolute.config)).rejects.toThrow(`stage box@site: fixture '/etc/shadow' is not a path relative to the fixtures directory ${absolute.fixturesDir}`);
    const linked = fixtureLab('# lab: fixtures=web/shadow');
    symlinkSync('/etc/shadow', path.join(linked.fixturesDir, 'web', 'shadow'));
    await expect(loadLab(linked.config)).rejects.toThrow(`stage box@site: fixture 'web/shadow' leads out of the fixtures directory ${linked.fixturesDir}, to /etc/shadow`);
    const linkedUp = fixtureLab('# lab: fixtures=up/x');
    symlinkSync(linkedUp.dir, path.join(linkedUp.fixturesDir, 'up'));
    writeFileSync(path.join(linkedUp.dir, 'x'), 'outside\n');
    await expect(loadLab(linkedUp.config)).rejects.toThrow(`leads out of the fixtures directory ${linkedUp.fixturesDir}, to ${path.join(linkedUp.dir, 'x')}`);
    const missing = fixtureLab('# lab: fixtures=web/b.conf');
    await expect(loadLab(missing.config)).rejects.toThrow(`stage box@site: fixture 'web/b.conf' not found in ${missing.fixturesDir}`);
    rmSync(missing.fixturesDir, { recursive: true });
    await expect(loadLab(missing.config)).rejects.toThrow(`stage box@site: fixture 'web/b.conf' not found in ${missing.fixturesDir}`);
  });

  it('takes a directory as a fixture: its whole tree in the key, links inside it followed when they stay in the fixtures directory', async () => {
    const lab = fixtureLab('# lab: fixtures=roles/x');
    const role = path.join(lab.fixturesDir, 'roles', 'x');
    mkdirSync(path.join(role, 'tasks'), { recursive: true });
    writeFileSync(path.join(role, 'tasks', 'main.yml'), '- ping:\n');
    const first = await lab.key();
    writeFileSync(path.join(role, 'tasks', 'main.yml'), '- ping: {}\n');
    const edited = await lab.key();
    expect(edited).not.toBe(first);
    symlinkSync('../../../web/a.conf', path.join(role, 'tasks', 'a.conf'));
    const linked = await lab.key();
    expect(linked).not.toBe(edited);
    writeFileSync(path.join(lab.fixturesDir, 'web', 'a.conf'), 'a, edited\n');
    expect(await lab.key()).not.toBe(linked); // what a link leads to is content too
    symlinkSync('/etc', path.join(role, 'etc'));
    await expect(lab.key()).rejects.toThrow(`stage box@site: fixture 'roles/x' leads out of the fixtures directory ${lab.fixturesDir} (roles/x/etc), to /etc`);
    rmSync(path.join(role, 'etc'));
    symlinkSync('../../web', path.join(role, 'web'));
    await expect(lab.key()).rejects.toThrow("stage box@site: fixture 'roles/x' holds roles/x/web, a link to a directory: link its files, or put the directory itself there");
  });

  it('copies a directory fixture whole beside the script, and checks a fixture again as it is read', async () => {
    const lab = fixtureLab('# lab: fixtures=roles/x web/a.conf');
    mkdirSync(path.join(lab.fixturesDir, 'roles', 'x', 'tasks'), { recursive: true });
    writeFileSync(path.join(lab.fixturesDir, 'roles', 'x', 'tasks', 'main.yml'), '- ping:\n');
    const loaded = await loadLab(lab.config);
    const seen: string[] = [];
    const runner = {
      async run(_root: string, _name: string, _argv: readonly string[], options: { binds?: readonly { source: string; target: string }[] }) {
        const dir = options.binds!.find((b) => b.target === '/run/lab-stage')!.source;
        for (const { relative, entry } of treeEntries(dir)) if (entry.isFile()) seen.push(`${relative}: ${readFileSync(path.join(dir, relative), 'utf8').trim()}`);
        return { argv: [], exitCode: 0, stdout: '', stderr: '', durationMs: 0 };
      },
    } as unknown as BuildSteps;
    const target = { runner, root: path.join(lab.dir, 'root'), nspawnName: 'box', fixturesDir: lab.fixturesDir, logFile: path.join(lab.dir, 'site.log'), binds: [], logLimitBytes: 64 * 1024 * 1024, timeoutMs: 60_000 };
    const stage = loaded.machines[0]!.stages.find((s) => s.name === 'site')!;
    const context = offlineContext(target, loaded.machines[0]!.view, stage.definition.fixtures!);
    await stage.definition.run!(context);
    expect(seen.sort()).toEqual(['fixtures/roles/x/tasks/main.yml: - ping:', 'fixtures/web/a.conf: a', 'stage.sh: #!/bin/sh\n# lab: fixtures=roles/x web/a.conf\ntrue']);
    expect(await context.fixture('roles/x/tasks/main.yml')).toBe('- ping:\n');
    await expect(context.fixture('roles/x')).rejects.toThrow("fixture 'roles/x' is a directory: read its files by name (roles/x/...), or use it from a script under $LAB_FIXTURES");
    rmSync(path.join(lab.fixturesDir, 'web', 'a.conf'));
    symlinkSync('/etc/passwd', path.join(lab.fixturesDir, 'web', 'a.conf'));
    await expect(context.fixture('web/a.conf')).rejects.toThrow(`a stage of box: fixture 'web/a.conf' leads out of the fixtures directory ${lab.fixturesDir}, to /etc/passwd`);
  });

  it("refuses a stage's bind target that is no plain absolute path", async () => {
    const lab = fixtureLab('# lab: binds=../etc');
    await expect(loadLab(lab.config)).rejects.toThrow("stage box@site: binds: '../etc': an absolute path inside the machine");
  });
});

describe("a team's content for Ansible and Puppet stages", () => {
  /** A lab in a directory of its own: stages/box/<stage> and `files` beside its config. */
  function teamLab(stage: string, source: string, files: Record<string, string>) {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-team-content-'));
    for (const [file, content] of Object.entries({ [`stages/box/${stage}`]: source, ...files })) {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      writeFileSync(path.join(dir, file), content);
    }
    const configFile = path.join(dir, 'lab.config.yaml');
    const config = validateConfig({ ...defaultLab, stagesDir: path.join(dir, 'stages'), zone: { dnsMachine: null }, machines: [{ name: 'box', address: '10.224.0.5', stages: [path.basename(stage, path.extname(stage))] }] });
    const stageOf = async () => (await loadLab(config, undefined, configFile)).machines[0]!.stages.at(-1)!;
    return { dir, stageOf, key: async () => (await stageOf()).definitionHash };
  }
  const playbook = '- hosts: all\n  roles: [web]\n';
  const roles = {
    'roles/web/tasks/main.yml': '- ansible.builtin.template: { src: site.j2, dest: /etc/site }\n',
    'roles/web/templates/site.j2': '{{ ansible_managed }}\n',
    'roles/web/meta/main.yml': 'dependencies: [base]\n',
    'roles/base/tasks/main.yml': '- ansible.builtin.apt: { name: cron, update_cache: true }\n',
    'roles/unused/tasks/main.yml': '- ansible.builtin.ping:\n',
    'ansible.cfg': '[defaults]\nansible_managed = managed by the team\n',
    'collections/ansible_collections/team/util/plugins/filter/shout.py': 'class FilterModule: pass\n',
  };

  it('keys an Ansible stage by the roles its playbook uses (dependencies too), collections and ansible.cfg, and installs python3-apt with the tool', async () => {
    const lab = teamLab('play.yml', playbook, roles);
    expect(await teamContent('ansible', path.join(lab.dir, 'stages/box/play.yml'), lab.dir, 'x')).toEqual(['ansible.cfg', 'collections', 'roles/base', 'roles/web']);
    expect((await lab.stageOf()).packages).toEqual(['ansible-core', 'python3-apt']);
    const keys = [await lab.key()];
    for (const [file, content] of [
      ['roles/web/templates/site.j2', 'edited\n'],
      ['roles/base/tasks/main.yml', '- ansible.builtin.ping:\n'],
      ['ansible.cfg', '[defaults]\n'],
      ['collections/ansible_collections/team/util/plugins/filter/shout.py', 'edited\n'],
    ]) {
      writeFileSync(path.join(lab.dir, file!), content!);
      keys.push(await lab.key());
    }
    expect(new Set(keys).size).toBe(5);
    writeFileSync(path.join(lab.dir, 'roles/unused/tasks/main.yml'), '- ansible.builtin.debug: { msg: edited }\n');
    expect(await lab.key()).toBe(keys.at(-1)); // a role the playbook does not use is not its content
    // Without a config file (the default lab), there is nothing beside it.
    expect(await teamContent('ansible', path.join(lab.dir, 'stages/box/play.yml'), undefined, 'x')).toEqual([]);
  });

  it("keys a Puppet stage by modules/, hiera.yaml and data/, and points puppet apply at them", async () => {
    const lab = teamLab('site.pp', 'include motd\n', { 'modules/motd/manifests/init.pp': 'class motd($message) {}\n', 'hiera.yaml': 'version: 5\n', 'data/common.yaml': "motd::message: 'hi'\n" });
    expect(await teamContent('puppet', path.join(lab.dir, 'stages/box/site.pp'), lab.dir, 'x')).toEqual(['modules', 'hiera.yaml', 'data']);
    const before = await lab.key();
    writeFileSync(path.join(lab.dir, 'data/common.yaml'), "motd::message: 'edited'\n");
    expect(await lab.key()).not.toBe(before);
    expect(toolCommand('puppet', '/var/tmp/lab-stage/site.pp', 'box', 'prolo', ['modules', 'hiera.yaml', 'data']).argv).toEqual([
      'puppet', 'apply', '--detailed-exitcodes', '--color=false', '--logdest', 'console', '--modulepath=/var/tmp/lab-stage/modules:$basemodulepath', '--hiera_config=/var/tmp/lab-stage/hiera.yaml', '/var/tmp/lab-stage/site.pp',
    ]);
    expect(toolCommand('puppet', '/var/tmp/lab-stage/site.pp', 'box', 'prolo').argv).not.toContainEqual(expect.stringMatching(/modulepath|hiera/));
    expect(toolCommand('ansible', '/var/tmp/lab-stage/play.yml', 'box', 'prolo', ['ansible.cfg']).env).toEqual({ ANSIBLE_CONFIG: '/var/tmp/lab-stage/ansible.cfg' });
  });

  it('unpacks that content beside the stage file in the machine, and runs the tool there', async () => {
    const lab = teamLab('play.yml', playbook, roles);
    const stage = await lab.stageOf();
    const commands: { argv: readonly string[]; input?: string }[] = [];
    const runner = {
      async run(_root: string, _name: string, argv: readonly string[], options: { input?: string; binds?: readonly { source: string; target: string }[] }) {
        const script = options.binds?.find((b) => b.target === '/run/lab-stage');
        commands.push({ argv, input: script ? readFileSync(path.join(script.source, 'stage.sh'), 'utf8') : options.input });
        return { argv: [], exitCode: 0, stdout: '', stderr: '', durationMs: 0 };
      },
    } as unknown as BuildSteps;
    const root = path.join(lab.dir, 'root');
    const target = { runner, root, nspawnName: 'box', fixturesDir: path.join(lab.dir, 'fixtures'), logFile: path.join(lab.dir, 'play.log'), binds: [], logLimitBytes: 64 * 1024 * 1024, timeoutMs: 60_000 };
    const loaded = await loadLab(validateConfig({ ...defaultLab, zone: { dnsMachine: null }, machines: [{ name: 'box', address: '10.224.0.5' }] }));
    await stage.definition.run!(offlineContext(target, loaded.machines[0]!.view, []));
    const [unpack, apply] = commands;
    expect(unpack!.argv).toEqual(['sh', '-c', `rm -rf ${WORK_DIR} && mkdir -p ${WORK_DIR} && base64 -d | tar -xzf - -C ${WORK_DIR} --no-same-owner`]);
    const archive = path.join(lab.dir, 'content.tar.gz');
    writeFileSync(archive, Buffer.from(unpack!.input!, 'base64'));
    const listed = (await run(['tar', '-tzf', archive])).stdout.split('\n').filter((f) => f && !f.endsWith('/')).sort();
    expect(listed).toEqual(['ansible.cfg', 'collections/ansible_collections/team/util/plugins/filter/shout.py', 'roles/base/tasks/main.yml', 'roles/web/meta/main.yml', 'roles/web/tasks/main.yml', 'roles/web/templates/site.j2']);
    expect(readFileSync(path.join(root, WORK_DIR, 'play.yml'), 'utf8')).toBe(playbook);
    expect(apply!.input).toContain(`cd ${WORK_DIR}\n'ansible-playbook' '-i' 'box,'`);
  });
});

describe('readiness in a stage header', () => {
  it('reads unit, port and cmd checks, a line each, the command being the rest of the line', () => {
    const header = parseStageHeader(['#!/bin/sh', '# lab: ready=unit:haproxy.service', '# lab: ready=port:80', '# lab: ready=port:10.0.0.2:8140', '# lab: ready=cmd:curl -fs http://localhost/ | grep -q ok'].join('\n'), 'x.sh');
    expect(header.ready).toEqual([{ unit: 'haproxy.service' }, { port: 80, address: '127.0.0.1' }, { port: 8140, address: '10.0.0.2' }, { command: 'curl -fs http://localhost/ | grep -q ok' }]);
    expect(parseStageHeader('# lab: packages=x\n', 'x.pp').ready).toEqual([]);
  });

  it('refuses a bad check, exit 2 naming the file, its line and the field', () => {
    const refused = (value: string) => () => parseStageHeader(`#!/bin/sh\n# lab: ready=${value}\n`, 'web/site.sh');
    expect(refused('socket:/run/x')).toThrow("stage web/site.sh:2: ready: 'socket:/run/x' is not a check lab knows");
    expect(refused('port:http')).toThrow("stage web/site.sh:2: ready: 'port:http' has no TCP port from 1 to 65535");
    expect(refused('port:70000')).toThrow(expect.objectContaining({ exitCode: 2 }));
    expect(refused('port:web:80')).toThrow("ready: 'port:web:80' has 'web', not an IPv4 address");
    expect(refused('unit:two units')).toThrow("ready: 'unit:two units' is not one systemd unit name");
    expect(refused('cmd: ')).toThrow("ready: 'cmd:' names no command");
    expect(() => parseStageHeader('# lab: ready\n', 'x.yml')).toThrow("stage x.yml:1: 'ready' needs a value (# lab: ready=unit:<unit>, port:[<address>:]<port> or cmd:<command>)");
  });

  it('waits for each check in the booted machine, and fails saying which did not hold', async () => {
    const seen: string[] = [];
    const machine = new Machine('web', async (argv) => {
      seen.push(argv.join(' '));
      const active = argv[1] === 'is-active' && argv[2] === 'haproxy';
      return { argv, exitCode: argv[0] === 'bash' || active ? 0 : 3, stdout: argv[1] === 'is-active' ? (active ? 'active\n' : 'failed\n') : '', stderr: '', durationMs: 1 };
    });
    await waitReady(machine, [{ unit: 'haproxy' }, { port: 80, address: '127.0.0.1' }], 1000);
    expect(seen).toEqual(['systemctl is-active haproxy', 'bash -c exec 3<>/dev/tcp/127.0.0.1/80']);
    await expect(waitReady(machine, [{ unit: 'nginx' }], 1000)).rejects.toThrow('web: unit nginx is failed');
  });
});

describe("the Puppet server with the team's content", () => {
  const team = () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-puppet-server-'));
    const files: Record<string, string> = {
      'modules/motd/manifests/init.pp': "class motd { file { '/etc/motd': content => lookup('motd') } }\n",
      'hiera.yaml': "version: 5\nhierarchy: [{ name: common, path: common.yaml }]\n",
      'data/common.yaml': "motd: from hiera\n",
    };
    for (const [file, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      writeFileSync(path.join(dir, file), content);
    }
    return dir;
  };
  const viewOf = (configDir?: string) => ({ configDir }) as LabView;

  it("keys the server by modules/, hiera.yaml and data/ beside the config", () => {
    const dir = team();
    const before = puppetServerInputs(viewOf(dir));
    expect(Object.keys(before)).toEqual(['modules', 'hiera.yaml', 'data']);
    writeFileSync(path.join(dir, 'data/common.yaml'), 'motd: changed\n');
    expect(puppetServerInputs(viewOf(dir))).toEqual({ ...before, data: expect.not.stringMatching(before.data!) });
    expect(puppetServerInputs(viewOf())).toEqual({});
    rmSync(dir, { recursive: true });
  });

  it('copies them into the server and points its basemodulepath and hiera_config at them', async () => {
    const dir = team();
    const execs: { argv: readonly string[]; input?: string }[] = [];
    const ctx = { lab: viewOf(dir), exec: async (argv: readonly string[], options?: { input?: string }) => (execs.push({ argv, input: options?.input }), { argv, exitCode: 0, stdout: '', stderr: '', durationMs: 1 }) } as unknown as StageContext;
    await servePuppetContent(ctx);
    expect(execs.map((e) => e.argv.join(' '))).toEqual([
      `sh -c rm -rf ${PUPPET_SERVER_CONTENT} && mkdir -p ${PUPPET_SERVER_CONTENT} && base64 -d | tar -xzf - -C ${PUPPET_SERVER_CONTENT} --no-same-owner`,
      `puppet config set --section server basemodulepath ${PUPPET_SERVER_CONTENT}/modules:$codedir/modules:/usr/share/puppet/modules`,
      `puppet config set --section server hiera_config ${PUPPET_SERVER_CONTENT}/hiera.yaml`,
    ]);
    const archive = path.join(dir, 'content.tgz');
    writeFileSync(archive, Buffer.from(execs[0]!.input!, 'base64'));
    expect((await run(['tar', '-tzf', archive])).stdout.split('\n').filter((f) => f && !f.endsWith('/')).sort()).toEqual(['data/common.yaml', 'hiera.yaml', 'modules/motd/manifests/init.pp']);
    execs.length = 0;
    await servePuppetContent({ ...ctx, lab: viewOf() } as StageContext);
    expect(execs).toEqual([]);
    rmSync(dir, { recursive: true });
  });
});
