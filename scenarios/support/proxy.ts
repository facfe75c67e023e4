import { expect } from 'vitest';
import type { ScenarioLab } from 'sadm-lab/scenario';

/** https://<site>/ through web reaches web-<site>: checked by the page only that machine serves, and the address it came from. */
export async function expectSniRouting(lab: ScenarioLab, from = 'gw'): Promise<void> {
  const site = `silicon.${lab.domain}`;
  const web = await lab.machine(from).resolve(`web.${lab.domain}`);
  const reply = await lab.machine(from).curl(`https://${site}/`, { insecure: true, expectStatus: 200 });
  expect(reply.body).toContain(`<h1>${site}</h1>`);
  expect(reply.body).toContain('Served by web-silicon');
  expect(reply.remoteIp).toBe(web); // through the proxy, not straight to web-silicon
}
