import { describe, expect, it } from 'vitest';
import { useLab } from 'sadm-lab/scenario';

const lab = await useLab();
const puppet = lab.machine('puppet');

describe('the Puppet server and its agents', () => {
  it('runs the Puppet server from Debian, with the code bound read-only', async () => {
    await expect(puppet).toHaveServiceEnabledAndActive('puppetserver');
    await expect(puppet).toListenOn(8140);
    expect(await puppet.fail(['touch', '/etc/puppet/code/environments/production/manifests/site.pp'])).toMatch(/Read-only file system/);
  });

  it('signed every agent as it asked (autosign)', async () => {
    const signed = await puppet.succeed('puppetserver ca list --all');
    for (const agent of ['web.prolo', 'web-silicon.prolo']) expect(signed).toMatch(new RegExp(`^\\s+${agent.replace('.', '\\.')}\\s`, 'm'));
  });

  it.each(['web', 'web-silicon', 'web-prologin'])('%s has the seed\'s /puppet-test', async (machine) => {
    expect(await lab.machine(machine).succeed('cat /puppet-test')).toBe('Hello. Hallo.\n');
  });

  it("applied the team's module with its hiera data, served by the server from beside the config", async () => {
    for (const machine of ['web', 'web-silicon']) expect(await lab.machine(machine).succeed('cat /etc/motd')).toBe("Seed 000, configured by Puppet with the team's module and hiera data\n");
  });

  it('provisioned web-silicon by Puppet and web-prologin by Ansible', async () => {
    expect(await lab.machine('web-silicon').succeed('cat /var/www/html/index.html')).toContain('provisioned by Puppet');
    expect(await lab.machine('web-prologin').succeed('cat /var/www/html/index.html')).toContain('provisioned by Ansible');
  });
});
