import { defineStage } from '../../../../lib/stages/define.js';
import { puppetAgent } from '../../../../lib/stages/tools.js';

/** web-silicon gets its site from the Puppet server (nginx is installed by lab: no download from inside the lab). */
export default defineStage({
  packages: ['puppet-agent', 'nginx-light', 'openssl'],
  online: true,
  async run(ctx) {
    await puppetAgent(ctx, { server: `puppet.${ctx.lab.topology.domain}` });
  },
});
