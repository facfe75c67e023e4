import { defineStage } from '../../lib/stages/define.js';
import type { LabView } from '../../lib/stages/define.js';

/** Every machine web-<name> serves <name>.<domain>. */
function sites(lab: LabView): { site: string; backend: string }[] {
  return lab.config.machines
    .map((m) => m.name)
    .filter((name) => /^web-./.test(name))
    .map((backend) => ({ site: `${backend.slice(4)}.${lab.config.zone.domain}`, backend }));
}

/** web: HTTP to HTTPS redirects, and HTTPS routed by SNI to the site's machine. */
export default defineStage({
  fixtures: ['web/haproxy.cfg'],
  inputs: (lab) => ({ sites: sites(lab), dns: lab.dnsAddress }),
  async run(ctx) {
    const { config } = ctx.lab;
    const routes = sites(ctx.lab).map(({ site, backend }) => `    use_backend ${backend} if { req.ssl_sni -i ${site} }`);
    const backends = sites(ctx.lab).map(({ backend }) =>
      [`backend ${backend}`, '    mode tcp', `    server ${backend} ${backend}.${config.zone.domain}:443 resolvers zone init-addr libc,none`].join('\n'),
    );
    await ctx.template('web/haproxy.cfg', '/etc/haproxy/haproxy.cfg', {
      dns: ctx.lab.dnsAddress ?? '127.0.0.1',
      routes: routes.join('\n'),
      backends: backends.join('\n\n'),
    });
    await ctx.exec(['haproxy', '-c', '-f', '/etc/haproxy/haproxy.cfg']);
  },
  async check(machine, lab) {
    await machine.waitForUnit('haproxy');
    for (const { site, backend } of sites(lab)) {
      const page = await machine.waitUntilSucceeds(['curl', '-fsSk', `https://${site}/`]);
      if (!page.includes(`<h1>${site}</h1>`)) throw new Error(`https://${site}/ through the proxy did not reach ${backend}:\n${page}`);
    }
  },
});
