import { describe, expect, it } from 'vitest';
import { defaultLab } from '../../lib/config/default.js';
import { topologyOf } from '../../lib/config/topology.js';
import { validateConfig } from '../../lib/config/validate.js';
import { natRuleset } from '../../lib/network/network.js';
import { listeningTcpPorts, publishedPorts, publishRules } from '../../lib/network/ports.js';

const config = validateConfig({
  ...defaultLab,
  machines: [
    { name: 'gw', address: '10.224.0.254', stages: ['dns'] },
    { name: 'web', address: '10.224.0.10', publish: [{ port: 443 }, { port: 8080, hostPort: 80 }, { port: 53, protocol: 'udp' }] },
  ],
});

describe('published ports', () => {
  it("go to the machine's static address on a NAT'ed network", () => {
    expect(publishedPorts(config, topologyOf(config))).toEqual([
      { machine: 'web', protocol: 'tcp', hostPort: 443, address: '10.224.0.10', port: 443 },
      { machine: 'web', protocol: 'tcp', hostPort: 80, address: '10.224.0.10', port: 8080 },
      { machine: 'web', protocol: 'udp', hostPort: 53, address: '10.224.0.10', port: 53 },
    ]);
  });

  it('are DNAT on the uplink address in sandbox mode, on the host\'s own addresses in host mode', () => {
    const ports = publishedPorts(config, topologyOf(config));
    expect(publishRules(ports, { iifname: 'uplink', daddr: '198.51.100.2' })[1]).toBe('    iifname "uplink" ip daddr 198.51.100.2 tcp dport 80 dnat to 10.224.0.10:8080');
    expect(publishRules(ports, 'host')[2]).toBe('    fib daddr type local udp dport 53 dnat to 10.224.0.10:53');
    const ruleset = natRuleset('lab_x', topologyOf(config).networks, publishRules(ports, 'host'));
    expect(ruleset).toContain('type nat hook prerouting priority dstnat; policy accept;');
    expect(natRuleset('lab_x', topologyOf(config).networks)).not.toContain('prerouting');
  });

  it('let in from outside only replies and published ports, after which anything else towards a zone is dropped', () => {
    const forward = natRuleset('lab_x', topologyOf(config).networks).split('chain forward {')[1]!.split('\n').map((l) => l.trim());
    const drop = forward.indexOf('oifname "vz-prolo" iifname != { "vz-prolo" } drop');
    expect(drop).toBeGreaterThan(forward.indexOf('oifname "vz-prolo" ct status dnat accept'));
    expect(drop).toBeGreaterThan(forward.indexOf('oifname "vz-prolo" ct state established,related accept'));
    expect(forward.indexOf('oifname "vz-prolo" ct status dnat accept')).toBeGreaterThan(0);
  });

  it('reads what listens on the host from /proc/net/tcp', () => {
    const table = ['  sl  local_address rem_address   st', '   0: 00000000:0050 00000000:0000 0A 00000000', '   1: 0100007F:1F90 0100007F:C350 01 00000000'].join('\n');
    expect([...listeningTcpPorts([table])]).toEqual([80]);
  });
});
