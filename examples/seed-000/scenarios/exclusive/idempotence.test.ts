import { expect, it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

const lab = await useLab();

it('applies the Puppet agent run and the Ansible playbook a second time, and nothing changes', async () => {
  const report = await lab.checkIdempotence(['web-silicon', 'web-prologin']);
  const changed = report.machines.flatMap((m) => m.stages.filter((s) => s.changed).map((s) => `${m.machine}@${s.stage}: ${s.changes.slice(0, 5).join(', ')}`));
  expect(changed).toEqual([]);
  expect(report.machines.map((m) => m.machine)).toEqual(expect.arrayContaining(['web-silicon', 'web-prologin']));
}, 600_000);
