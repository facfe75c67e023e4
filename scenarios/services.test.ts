import { describe, expect, it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

const lab = await useLab();

describe('services are enabled and active', () => {
  it('gw: dnsmasq, on DNS port 53', async () => {
    const gw = lab.machine('gw');
    await expect(gw).toHaveServiceEnabledAndActive('dnsmasq');
    await expect(gw).toListenOn(53);
    await expect(gw).toHaveFile('/etc/dnsmasq.d/lab.conf');
  });

  it('web: haproxy, on ports 80 and 443', async () => {
    const web = lab.machine('web');
    await expect(web).toHaveServiceEnabledAndActive('haproxy');
    await expect(web).toListenOn(80);
    await expect(web).toListenOn(443);
  });

  it('web-silicon: nginx, on port 443, with its certificate', async () => {
    const silicon = lab.machine('web-silicon');
    await expect(silicon).toHaveServiceEnabledAndActive('nginx');
    await expect(silicon).toListenOn(443);
    await expect(silicon).toHaveFile('/etc/ssl/lab/silicon.prolo.crt');
  });
});
