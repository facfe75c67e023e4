import { describe, expect, it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

const lab = await useLab();
const gw = lab.machine('gw');

describe("web's SNI proxy, configured by Puppet", () => {
  it.each(['silicon', 'prologin'])('routes https://%s.prolo/ to web-%s', async (name) => {
    const web = await gw.resolve('web.prolo');
    const reply = await gw.curl(`https://${name}.prolo/`, { insecure: true, expectStatus: 200, resolve: `${name}.prolo:443:${web}` });
    expect(reply.body).toContain(`<h1>${name}.prolo</h1>`);
    expect(reply.body).toContain(`served by web-${name}`);
  });

  it('answers port 80 with 301 to https', async () => {
    expect((await gw.curl('http://silicon.prolo/', { expectStatus: 301 })).redirectUrl).toBe('https://silicon.prolo/');
  });
});

describe("web's published ports, from the simulated internet", () => {
  const outside = lab.publishedAddress!;

  it('reaches https://silicon.prolo/ through port 443, the proxy and the backend', async () => {
    const reply = await lab.fromInternet(['curl', '-sS', '-k', '--max-time', '10', '--resolve', `silicon.prolo:443:${outside}`, '-w', 'HTTP-STATUS %{http_code}', 'https://silicon.prolo/']);
    expect(reply.exitCode, reply.stderr).toBe(0);
    expect(reply.stdout).toContain('<h1>silicon.prolo</h1>');
    expect(reply.stdout).toContain('HTTP-STATUS 200');
  });

  it('gets 301 on port 80', async () => {
    const reply = await lab.fromInternet(['curl', '-sS', '--max-time', '10', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', '-H', 'Host: silicon.prolo', `http://${outside}/`]);
    expect(reply.stdout).toBe('301 https://silicon.prolo/');
  });
});
