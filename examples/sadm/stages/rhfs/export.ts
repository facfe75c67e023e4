import { defineStage } from '../../../../lib/stages/define.js';

/** rhfs: a file server with a card on the servers network and one on the users network; it answers on both. */
export default defineStage({
  packages: ['nginx-light'],
  async run(ctx) {
    await ctx.writeFile('/etc/nginx/sites-enabled/default', 'server {\n  listen 80 default_server;\n  root /srv/rhfs;\n}\n');
    await ctx.writeFile('/srv/rhfs/index.html', 'rhfs\n');
    await ctx.enable('nginx');
  },
  async check(machine) {
    await machine.waitForOpenPort(80);
  },
});
