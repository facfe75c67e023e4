import { describe, expect, it } from 'vitest';
import { interfaceAddresses, listeningPorts, recordedLabScenario, recordedScenario } from '../../lib/engine/record.js';

describe('lab record', () => {
  it('reads listening ports from ss, IPv4 and IPv6, each once', () => {
    const ss = ['LISTEN 0 32   10.224.0.254:53 0.0.0.0:*', 'LISTEN 0 4096 [::]:80 [::]:*', 'UNCONN 0 0 0.0.0.0%host0:67 0.0.0.0:*', 'LISTEN 0 32 127.0.0.1:53 0.0.0.0:*'].join('\n');
    expect(listeningPorts(ss)).toEqual([53, 67, 80]);
  });

  it('reads addresses from ip -o addr, without loopback', () => {
    const ip = ['1: lo    inet 127.0.0.1/8 scope host lo', '2: host0    inet 10.224.0.254/24 brd 10.224.0.255 scope global host0', '2: host0    inet6 fe80::1/64 scope link'].join('\n');
    expect(interfaceAddresses(ip)).toEqual([
      { interface: 'host0', address: '10.224.0.254/24' },
      { interface: 'host0', address: 'fe80::1/64' },
    ]);
  });

  it('writes a scenario asserting the record, quoting what needs it', () => {
    const scenario = recordedScenario(
      { machine: 'web-1', services: ['haproxy.service'], ports: [{ protocol: 'tcp', port: 443 }, { protocol: 'udp', port: 53 }], addresses: [{ interface: 'host0', address: '10.0.0.2/24' }], files: [{ path: "/etc/it's", sha256: 'ab' }] },
      'sadm-lab/scenario',
      '2026-11-23T00:00:00.000Z',
    );
    expect(scenario).toContain("import { useLab } from 'sadm-lab/scenario';");
    expect(scenario).toContain("  const machine = lab.machine('web-1');");
    expect(scenario).toContain("it.each(['haproxy.service'])('%s is enabled and active'");
    expect(scenario).toContain("it.each([443])('listens on TCP port %i'");
    expect(scenario).toContain("await expect(machine).toListenOn(port, 'udp');");
    expect(scenario).toContain("toContain(' 10.0.0.2/24 ')");
    expect(scenario).toContain("['sha256sum', '--', '/etc/it\\'s']");
    expect(scenario.endsWith('});\n')).toBe(true);
  });

  it('writes the whole lab as one scenario, a block per machine, naming what it could not record', () => {
    const record = (machine: string) => ({ machine, services: [`${machine}d.service`], ports: [], addresses: [], files: [] });
    const scenario = recordedLabScenario([record('gw'), record('web')], ['pc (a vm)', 'rhfs (not running)'], 'sadm-lab/scenario', '2026-12-02T00:00:00.000Z');
    expect(scenario.match(/^describe\(/gm)).toHaveLength(2);
    expect(scenario).toContain("describe('gw as recorded', () => {\n  const machine = lab.machine('gw');");
    expect(scenario).toContain("it.each(['webd.service'])");
    expect(scenario).toContain('// Not recorded: pc (a vm); rhfs (not running).');
    expect(scenario.match(/const lab = await useLab\(\);/g)).toHaveLength(1);
  });
});
