import { expect, it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

// The lab `lab test` runs against; the verbs: node_modules/sadm-lab/docs/scenario-api.md.
const lab = await useLab();
const gw = lab.machine('gw');
const web = lab.machine('web');

it('serves the site to the other machines, by name', async () => {
  await expect(web).toHaveServiceEnabledAndActive('nginx');
  const reply = await gw.curl(`http://web.${lab.domain}/`, { expectStatus: 200 });
  expect(reply.body).toContain('hello from web');
});
