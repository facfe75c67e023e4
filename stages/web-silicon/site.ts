import { defineStage } from '../../lib/stages/define.js';

const siteOf = (machine: string, domain: string) => `${machine.replace(/^web-/, '')}.${domain}`;

/** web-silicon: its HTTPS site, with a certificate made for this lab (it never leaves the machine). */
export default defineStage({
  fixtures: ['web-silicon/site.conf', 'web-silicon/index.html'],
  // Its page names the lab: a lab of another name (one that pulled the cache) builds it again.
  inputs: (lab) => ({ lab: lab.config.name }),
  async run(ctx) {
    const { config, machine } = ctx.lab;
    const site = siteOf(machine.name, config.zone.domain);
    const values = { site, machine: machine.name, domain: config.zone.domain, lab: config.name };
    await ctx.exec(['mkdir', '-p', '/etc/ssl/lab', `/var/www/${site}`]);
    // Made once: applied again (lab up --idempotence), the stage keeps its certificate.
    const openssl = [
      'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '825',
      '-subj', `/CN=${site}`, '-addext', `subjectAltName=DNS:${site},DNS:${machine.name}.${config.zone.domain}`,
      '-keyout', `/etc/ssl/lab/${site}.key`, '-out', `/etc/ssl/lab/${site}.crt`,
    ];
    await ctx.exec(['sh', '-c', 'test -s "$1" && test -s "$2" && exit 0; shift 2; exec "$@"', 'make-certificate', `/etc/ssl/lab/${site}.key`, `/etc/ssl/lab/${site}.crt`, ...openssl]);
    await ctx.exec(['chmod', '600', `/etc/ssl/lab/${site}.key`]);
    await ctx.template('web-silicon/index.html', `/var/www/${site}/index.html`, values);
    await ctx.template('web-silicon/site.conf', '/etc/nginx/sites-available/lab-site', values);
    await ctx.exec(['rm', '-f', '/etc/nginx/sites-enabled/default']);
    await ctx.exec(['ln', '-sf', '/etc/nginx/sites-available/lab-site', '/etc/nginx/sites-enabled/lab-site']);
  },
  async check(machine, lab) {
    await machine.waitForUnit('nginx');
    const page = await machine.waitUntilSucceeds(['curl', '-fsSk', 'https://127.0.0.1/']);
    const site = siteOf(lab.machine.name, lab.config.zone.domain);
    if (!page.includes(`<h1>${site}</h1>`)) throw new Error(`the page of ${site} is not served:\n${page}`);
  },
});
