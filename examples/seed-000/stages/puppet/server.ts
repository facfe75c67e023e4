import { defineStage } from '../../../../lib/stages/define.js';
import { puppetServerInputs, servePuppetContent } from '../../../../lib/stages/tools.js';

/**
 * The Puppet server (Debian's puppetserver), sized for a small host: a 512 MiB heap, one JRuby
 * instance, and a JVM tuned to start rather than to run for weeks (the client compiler only, one
 * GC thread, Ruby interpreted): its start took 91-139 s on 2 busy cores, 43-49 s with these. Its code directory is the example's ./puppet, bound read-only; agents are
 * signed as they ask (autosign), as in the seed. The team's modules/, hiera.yaml and data/ beside
 * the config are served too (copied in: part of the key).
 */
export default defineStage({
  packages: ['puppetserver'],
  fixtures: ['puppet/puppet.conf'],
  binds: ['/etc/puppet/code'],
  inputs: puppetServerInputs,
  async run(ctx) {
    await ctx.template('puppet/puppet.conf', '/etc/puppet/puppet.conf', { domain: ctx.lab.topology.domain });
    await servePuppetContent(ctx);
    await ctx.exec(['sed', '-i', 's/^JAVA_ARGS=.*/JAVA_ARGS="-Xms256m -Xmx512m -XX:ReservedCodeCacheSize=64m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djruby.compile.mode=OFF -Djruby.logger.class=com.puppetlabs.jruby_utils.jruby.Slf4jLogger"/', '/etc/default/puppetserver']);
    await ctx.exec(['sed', '-i', 's/^\\(\\s*\\)#\\?\\s*max-active-instances:.*/\\1max-active-instances: 1/', '/etc/puppet/puppetserver/conf.d/puppetserver.conf']);
    // The CA is made here, not at the server's first start: it is then part of the snapshot, and a
    // restored server still knows the agents it signed.
    const domain = ctx.lab.topology.domain;
    await ctx.exec(['puppetserver', 'ca', 'setup', '--certname', `puppet.${domain}`, '--subject-alt-names', `puppet,puppet.${domain}`]);
    await ctx.exec(['chown', '-R', 'puppet:puppet', '/etc/puppet/puppetserver/ca', '/var/lib/puppet/ssl']);
    await ctx.enable('puppetserver');
  },
  async check(machine) {
    await machine.waitForUnit('puppetserver', 240_000);
    await machine.waitForOpenPort(8140, '127.0.0.1', 60_000);
  },
});
