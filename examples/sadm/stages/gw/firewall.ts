import { defineStage } from '../../../../lib/stages/define.js';

/** gw's firewall: the ruleset comes from the team's repository, bound at /root/sadm (its content is part of this stage's key). */
export default defineStage({
  packages: ['nftables'],
  binds: ['/root/sadm'],
  async run(ctx) {
    await ctx.exec(['install', '-m', '0644', '/root/sadm/firewall.nft', '/etc/nftables.conf']);
    await ctx.enable('nftables');
  },
  async check(machine) {
    await machine.waitForUnit('nftables');
    await machine.succeed('nft list table inet filter');
  },
});
