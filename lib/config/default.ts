import type { LabConfigInput } from './schema.js';

/**
 * The default lab, shaped after SADM: gw serves DNS and DHCP for the zone,
 * web proxies HTTPS by SNI to the web-<name> machines.
 */
export const defaultLab: LabConfigInput = {
  name: 'lab',
  machines: [
    { name: 'gw', address: '10.224.0.254', stages: ['dns'] },
    { name: 'web-silicon', address: 'dhcp', dependsOn: ['gw'], stages: ['nginx', 'site'] },
    { name: 'web', address: 'dhcp', dependsOn: ['gw', 'web-silicon'], stages: ['haproxy', 'proxy'] },
  ],
};
