import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { mergeConfig } from '../../lib/config/load.js';
import { defaultLab } from '../../lib/config/default.js';
import { topologyOf } from '../../lib/config/topology.js';
import { validateConfig } from '../../lib/config/validate.js';
import { inventoryIni, inventoryJson, inventoryOf, inventoryYamlObject, knownHosts, sshConfig } from '../../lib/controller/inventory.js';
import { loadControllerStages } from '../../lib/controller/load.js';
import { playbookReads } from '../../lib/controller/playbook.js';
import { describeFailures, parseAnsibleOutput } from '../../lib/controller/recap.js';
import { controllerArgv } from '../../lib/engine/controller.js';
import { type MachineSpec, parseStageRef, planLab } from '../../lib/plan/plan.js';

const exampleDir = path.resolve(import.meta.dirname, '../../examples/sadm-ansible');
const exampleInput = () => mergeConfig(defaultLab, parse(readFileSync(path.join(exampleDir, 'lab.config.yaml'), 'utf8')));

/** The example's config as lab loads it: paths resolved against `dir` (a copy, when a test edits files). */
function example(dir = exampleDir, change: (input: Record<string, unknown>) => void = () => undefined) {
  const input = exampleInput() as unknown as Record<string, unknown>;
  change(input);
  const config = validateConfig(input);
  for (const stage of config.controller) {
    if (stage.playbook) stage.playbook = path.resolve(dir, stage.playbook);
    if (stage.run?.[0]?.includes('/')) stage.run[0] = path.resolve(dir, stage.run[0]);
    stage.inventory = stage.inventory.map((p) => path.resolve(dir, p));
  }
  return config;
}

function refused(change: (input: Record<string, unknown>) => void): string {
  try {
    example(exampleDir, change);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected the config to be refused');
}

describe('the inventory of a lab', () => {
  const config = example();
  const topology = topologyOf(config);

  it('reaches gw directly on its NAT-ed network, every other machine through gw (sandbox and host mode alike)', () => {
    const inventory = inventoryOf(config, topology);
    const reach = Object.fromEntries(inventory.hosts.map((h) => [h.name, h.reach]));
    expect(reach).toEqual({
      gw: { address: '10.9.0.254' },
      web: { address: '192.168.1.10', via: 'gw' },
      rhfs: { address: '192.168.1.20', via: 'gw' },
      r00p01: { address: '192.168.0.101', via: 'gw' },
    });
    const hostMode = topologyOf(example(exampleDir, (input) => (input.network = { mode: 'host' })));
    expect(inventoryOf(config, hostMode).hosts.map((h) => h.reach)).toEqual(inventory.hosts.map((h) => h.reach));
  });

  it('reaches a DHCP machine at its lease when it runs, by its name through the DNS machine before', () => {
    const lab = validateConfig(defaultLab);
    const defaultTopology = topologyOf(lab);
    const before = inventoryOf(lab, defaultTopology);
    expect(before.hosts.find((h) => h.name === 'web')!.reach).toEqual({ address: 'web.prolo', via: 'gw' });
    const live = new Map([['web', new Map([['prolo', '10.224.0.130']])]]);
    const after = inventoryOf(lab, defaultTopology, live);
    expect(after.hosts.find((h) => h.name === 'web')!.reach).toEqual({ address: '10.224.0.130' });
    expect(after.hosts.find((h) => h.name === 'web')!.interfaces[0]!.address).toBe('10.224.0.130');
  });

  it('gives each host its groups, MACs and ansible_host, and lab SSH config as a host variable', () => {
    const inventory = inventoryOf(config, topology, new Map(), '/state/controller/ssh_config');
    const yaml = inventoryYamlObject(inventory) as { all: { hosts: Record<string, Record<string, unknown>>; children: Record<string, { hosts: Record<string, null> }>; vars: Record<string, string> } };
    const gw = yaml.all.hosts.gw!;
    const gwTopology = topology.machines.find((m) => m.name === 'gw')!;
    expect(gw.ansible_host).toBe('10.9.0.254');
    expect(gw.mac).toBe(gwTopology.interfaces[0]!.mac);
    expect(gw.mac).toMatch(/^02(:[0-9a-f]{2}){5}$/);
    expect(gw.ansible_ssh_common_args).toBe('-F /state/controller/ssh_config');
    expect(gw.lab_interfaces).toEqual(gwTopology.interfaces.map((i) => ({ name: i.name, network: i.network, address: i.address, mac: i.mac })));
    expect(Object.keys(yaml.all.children.contestants!.hosts)).toEqual(['r00p01']);
    expect(Object.keys(yaml.all.children.lab_containers!.hosts)).toEqual(['gw', 'web', 'rhfs', 'r00p01']);
    expect(yaml.all.vars.ansible_user).toBe('root');
    const json = inventoryJson(inventory) as { _meta: { hostvars: Record<string, Record<string, unknown>> }; services: { hosts: string[] } };
    expect(json.services.hosts).toEqual(['gw', 'web']);
    expect(json._meta.hostvars.web!.ansible_host).toBe('192.168.1.10');
    const ini = inventoryIni(inventory);
    expect(ini).toContain('\n[contestants]\nr00p01\n');
    expect(ini).toMatch(/^web ansible_host=192\.168\.1\.10 ansible_ssh_common_args="-F \/state\/controller\/ssh_config" /m);
  });

  it('writes an SSH config that jumps through gw and checks the lab host keys strictly', () => {
    const text = sshConfig(inventoryOf(config, topology), { key: '/k/id_ed25519', knownHosts: '/k/known_hosts' });
    expect(text).toContain('Host gw 10.9.0.254\n  HostName 10.9.0.254\n  HostKeyAlias gw\n\n');
    expect(text).toContain('Host web 192.168.1.10\n  HostName 192.168.1.10\n  HostKeyAlias web\n  ProxyJump gw\n');
    expect(text).toContain('StrictHostKeyChecking yes');
    expect(text).toContain('UserKnownHostsFile /k/known_hosts');
    expect(text).not.toContain('SetEnv');
    expect(sshConfig(inventoryOf(config, topology), { key: '/k', knownHosts: '/h', sessionTag: 'LAB_CONTROLLER_RUN=x1' })).toContain('  SetEnv LAB_CONTROLLER_RUN=x1\n');
    expect(knownHosts(new Map([['gw', 'ssh-ed25519 AAAAC3Nz root@gw\n']]))).toBe('gw ssh-ed25519 AAAAC3Nz\n');
  });
});

describe('what a playbook reads', () => {
  it('is its imports, the roles its plays name, and the rest of its directory but other playbooks', () => {
    const ansible = path.join(exampleDir, 'ansible');
    const web = playbookReads(path.join(ansible, 'playbook-web.yml'), 'playbook').paths.map((p) => path.relative(ansible, p));
    expect(web).toEqual(['ansible.cfg', 'inventory', 'playbook-web.yml', 'roles/base', 'roles/concours', 'roles/networkd', 'roles/nginx']);
    const all = playbookReads(path.join(ansible, 'playbook-all-sadm.yml'), 'playbook');
    expect(all.paths.map((p) => path.relative(ansible, p))).toContain('playbook-gw.yml');
    expect(all.hosts).toEqual(['gw', 'web', 'rhfs_servers']);
  });

  it('changes the key of only the plays whose roles hold an edited file', () => {
    const copy = mkdtempSync(path.join(tmpdir(), 'lab-keys-'));
    cpSync(exampleDir, copy, { recursive: true });
    const keys = () => {
      const config = example(copy);
      return Object.fromEntries(loadControllerStages(config, topologyOf(config), copy).map((s) => [s.name, s.definitionHash]));
    };
    const before = keys();
    writeFileSync(path.join(copy, 'ansible/roles/concours/templates/concours.nginx'), '# edited\n', { flag: 'a' });
    const after = keys();
    expect(after['gw-play']).toBe(before['gw-play']);
    expect(after['rhfs-play']).toBe(before['rhfs-play']);
    expect(after['web-play']).not.toBe(before['web-play']);
    writeFileSync(path.join(copy, 'ansible/inventory/hosts.yml'), '# edited\n', { flag: 'a' });
    const inventoryEdited = keys();
    expect(inventoryEdited['gw-play']).not.toBe(after['gw-play']);
    // The same checkout somewhere else has the same keys.
    const elsewhere = mkdtempSync(path.join(tmpdir(), 'lab-keys-'));
    cpSync(copy, elsewhere, { recursive: true });
    const moved = example(elsewhere);
    expect(Object.fromEntries(loadControllerStages(moved, topologyOf(moved), elsewhere).map((s) => [s.name, s.definitionHash]))).toEqual(inventoryEdited);
  });
});

describe('controller stages in the plan', () => {
  const machines: MachineSpec[] = ['gw', 'web'].map((name) => ({ name, dependsOn: [], stages: [{ machine: name, name: 'system', packages: [], definitionHash: name }] }));
  const controller = [
    { name: 'gw-play', definitionHash: 'a' },
    { name: 'web-play', definitionHash: 'b' },
  ];
  const built = (plan: ReturnType<typeof planLab>) => new Set([...plan.machines.flatMap((m) => [...m.stages, ...plan.controller].map((s) => `${m.name}/${s.name}@${s.key}`))]);

  it('caches a play only when every machine has its snapshot, and resumes machines from the last cached play', () => {
    const first = planLab({ machines, baseKey: 'base', hasSnapshot: () => false, controller });
    expect(first.controller.map((s) => s.action)).toEqual(['build', 'build']);
    const all = built(first);
    const webPlayMissing = (m: string, s: string, k: string) => all.has(`${m}/${s}@${k}`) && !(m === 'web' && s === 'web-play');
    const second = planLab({ machines, baseKey: 'base', hasSnapshot: webPlayMissing, controller });
    expect(second.controller.map((s) => s.action)).toEqual(['cached', 'build']);
    expect(second.machines.map((m) => m.resumeFrom)).toEqual([
      { stage: 'gw-play', key: first.controller[0]!.key },
      { stage: 'gw-play', key: first.controller[0]!.key },
    ]);
    const third = planLab({ machines, baseKey: 'base', hasSnapshot: (m, s, k) => all.has(`${m}/${s}@${k}`), controller });
    expect(third.controller.map((s) => s.action)).toEqual(['cached', 'cached']);
    expect(third.machines[0]!.resumeFrom?.stage).toBe('web-play');
  });

  it('runs every play again when a machine stage changes, and a changed play with the ones after it', () => {
    const first = planLab({ machines, baseKey: 'base', hasSnapshot: () => false, controller });
    const all = built(first);
    const has = (m: string, s: string, k: string) => all.has(`${m}/${s}@${k}`);
    const changedMachine = machines.map((m) => (m.name === 'web' ? { ...m, stages: [{ ...m.stages[0]!, definitionHash: 'changed' }] } : m));
    expect(planLab({ machines: changedMachine, baseKey: 'base', hasSnapshot: has, controller }).controller.map((s) => s.action)).toEqual(['build', 'build']);
    const changedPlay = [controller[0]!, { ...controller[1]!, definitionHash: 'changed' }];
    const plan = planLab({ machines, baseKey: 'base', hasSnapshot: has, controller: changedPlay });
    expect(plan.controller.map((s) => s.action)).toEqual(['cached', 'build']);
    expect(plan.controller[0]!.key).toBe(first.controller[0]!.key);
    const from = planLab({ machines, baseKey: 'base', hasSnapshot: has, controller, options: { from: { stage: 'gw-play' } } });
    expect(from.controller.map((s) => s.action)).toEqual(['build', 'build']);
    const until = planLab({ machines, baseKey: 'base', hasSnapshot: has, controller, options: { until: { stage: 'gw-play' } } });
    expect(until.controller.map((s) => s.name)).toEqual(['gw-play']);
  });

  it('names controller stages in stage references', () => {
    expect(parseStageRef('gw-play', machines, { controller: ['gw-play'] })).toEqual({ stage: 'gw-play' });
    expect(parseStageRef('web@gw-play', machines, { controller: ['gw-play'] })).toEqual({ machine: 'web', stage: 'gw-play' });
    expect(() => parseStageRef('gw-plya', machines, { controller: ['gw-play'] })).toThrow("did you mean 'gw-play'?");
  });
});

describe('controller stages refused before anything is made', () => {
  const stage = (extra: Record<string, unknown>) => (input: Record<string, unknown>) => {
    input.controller = [{ name: 'play', playbook: 'ansible/playbook-gw.yml', ...extra }];
  };

  it('names the field', () => {
    expect(refused(stage({ run: ['true'] }))).toContain('controller.0: give either playbook or run');
    expect(refused((input) => (input.controller = [{ name: 'x', run: ['true'], tags: ['a'] }]))).toContain('controller.0.tags: only for a playbook stage');
    expect(refused(stage({ name: 'gw' }))).toContain("controller.0.name: 'gw' is the name of a machine");
    expect(refused(stage({ name: 'packages' }))).toContain("controller.0.name: 'packages' is the name of a machine's stage");
    expect(refused(stage({ name: 'ssh' }))).toContain("controller.0.name: 'ssh' is the name of a machine's stage");
    expect(refused((input) => ((input.machines as { groups?: string[] }[])[0]!.groups = ['bad-group']))).toContain('machines.0.groups.0: an Ansible group name');
    expect(refused((input) => ((input.machines as { groups?: string[] }[])[0]!.groups = ['web']))).toContain("machines.0.groups: 'web' is the name of a machine");
  });

  it('refuses a play or a limit that reaches a vm', () => {
    const withVm = (input: Record<string, unknown>) => {
      (input.machines as unknown[]).push({ name: 'pc', kind: 'vm', groups: ['contestants'], interfaces: [{ network: 'users' }] });
    };
    expect(refused((input) => (withVm(input), (input.controller = [{ name: 'p', playbook: 'ansible/playbook-gw.yml', limit: 'contestants' }])))).toContain(
      "controller.0.limit: names the vm 'pc'",
    );
    const config = example(exampleDir, (input) => {
      withVm(input);
      input.controller = [{ name: 'p', playbook: 'ansible/playbook-gw.yml' }];
    });
    config.controller[0]!.playbook = path.join(exampleDir, 'ansible/playbook-gw.yml');
    expect(() => loadControllerStages(config, topologyOf(config), exampleDir)).not.toThrow();
    const all = path.join(mkdtempSync(path.join(tmpdir(), 'lab-play-')), 'all.yml');
    writeFileSync(all, '- hosts: all\n  tasks: []\n');
    config.controller[0]!.playbook = all;
    expect(() => loadControllerStages(config, topologyOf(config), exampleDir)).toThrow("a play for hosts 'all' includes the vm 'pc'");
  });
});

describe("Ansible's output", () => {
  const output = [
    'PLAY [install the web machine] ***',
    '',
    'TASK [nginx : Install nginx] ***',
    'fatal: [web]: FAILED! => {"changed": false, "msg": "No package matching \'ngnix\' is available"}',
    'TASK [base : optional] ***',
    'fatal: [gw]: FAILED! => {"changed": false, "msg": "ignored"}',
    '...ignoring',
    '',
    'PLAY RECAP *********************************************************************',
    'gw                         : ok=5    changed=2    unreachable=0    failed=0    skipped=1    rescued=0    ignored=1',
    'web                        : ok=1    changed=0    unreachable=0    failed=1    skipped=0    rescued=0    ignored=0',
  ].join('\n');

  it('gives the recap per host and the failed tasks, not the ignored ones', () => {
    const outcome = parseAnsibleOutput(output);
    expect(outcome.recap).toEqual([
      { host: 'gw', ok: 5, changed: 2, unreachable: 0, failed: 0, skipped: 1 },
      { host: 'web', ok: 1, changed: 0, unreachable: 0, failed: 1, skipped: 0 },
    ]);
    expect(describeFailures(outcome)).toBe("web: nginx : Install nginx: No package matching 'ngnix' is available");
  });

  it('builds the command line: lab inventory first, the team one beside it', () => {
    const config = example();
    const [gwPlay, register, webPlay] = loadControllerStages(config, topologyOf(config), exampleDir);
    expect(controllerArgv(webPlay!, { inventory: '/s/inventory.yml' })).toEqual([
      'ansible-playbook',
      '-i',
      '/s/inventory.yml',
      '-i',
      path.join(exampleDir, 'ansible/inventory/hosts.yml'),
      '--tags',
      'base,nginx,concours',
      path.join(exampleDir, 'ansible/playbook-web.yml'),
    ]);
    expect(gwPlay!.cwd).toBe(path.join(exampleDir, 'ansible'));
    expect(controllerArgv(register!, { inventory: '/s/inventory.yml' })).toEqual([path.join(exampleDir, 'scripts/register-machines.py')]);
  });
});
