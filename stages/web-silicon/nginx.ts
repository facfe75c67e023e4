import { defineStage } from '../../lib/stages/define.js';

/** web-silicon: the web server, as the distribution ships it. */
export default defineStage({
  packages: ['nginx', 'openssl'],
  async run(ctx) {
    await ctx.enable('nginx');
  },
  async check(machine) {
    await machine.waitForUnit('nginx');
  },
});
