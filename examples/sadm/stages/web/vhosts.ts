import { defineStage } from '../../../../lib/stages/define.js';

/** web: nginx serving SADM's two sites by name, concours and home. */
export default defineStage({
  packages: ['nginx-light'],
  fixtures: ['web/vhosts.conf'],
  async run(ctx) {
    const domain = ctx.lab.config.zone.domain;
    await ctx.template('web/vhosts.conf', '/etc/nginx/sites-enabled/default', { domain });
    for (const site of ['concours', 'home']) await ctx.writeFile(`/srv/${site}/index.html`, `<h1>${site}.${domain}</h1>\n`);
    await ctx.enable('nginx');
  },
  async check(machine) {
    await machine.waitForUnit('nginx');
    await machine.waitForOpenPort(80);
  },
});
