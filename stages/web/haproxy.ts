import { defineStage } from '../../lib/stages/define.js';

/** web: the proxy software, as the distribution ships it. */
export default defineStage({
  packages: ['haproxy'],
  async run(ctx) {
    await ctx.enable('haproxy');
  },
  async check(machine) {
    await machine.waitForUnit('haproxy');
  },
});
