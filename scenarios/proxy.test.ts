import { describe, expect, it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';
import { expectSniRouting } from './support/proxy.js';

const lab = await useLab();
const gw = lab.machine('gw');

describe("web's proxy", () => {
  it('routes https://silicon.prolo/ by SNI to web-silicon', () => expectSniRouting(lab));

  it('answers http://silicon.prolo/ with 301 to https', async () => {
    const reply = await gw.curl(`http://silicon.${lab.domain}/`, { expectStatus: 301 });
    expect(reply.redirectUrl).toBe(`https://silicon.${lab.domain}/`);
  });

  it('sends an unknown SNI name to no backend', async () => {
    const web = await gw.resolve(`web.${lab.domain}`);
    const unknown = `nosuch.${lab.domain}`;
    await expect(gw.curl(`https://${unknown}/`, { insecure: true, resolve: `${unknown}:443:${web}` })).rejects.toThrow(/curl https:\/\/nosuch\.prolo\/ failed/);
  });
});
