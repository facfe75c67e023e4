import { defineStage } from '../../../../lib/stages/define.js';
import { puppetAgent } from '../../../../lib/stages/tools.js';

/** web gets its SNI proxy from the Puppet server (haproxy is installed by lab: no download from inside the lab). */
export default defineStage({
  packages: ['puppet-agent', 'haproxy'],
  online: true,
  async run(ctx) {
    await puppetAgent(ctx, { server: `puppet.${ctx.lab.topology.domain}` });
  },
});
