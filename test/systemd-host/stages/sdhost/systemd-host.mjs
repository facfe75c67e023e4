// A "systemd host" for the machinectl runtime's test: a Debian root with systemd, machined and
// networkd, plus the tools lab needs. The test boots it itself and runs a lab inside it.
export default {
  packages: ['systemd-container', 'nftables', 'btrfs-progs', 'procps', 'debootstrap'],
  async run(ctx) {
    // The default lab's packages, downloaded now through the host's network into the shared
    // cache: inside the systemd host, whose only network is the test's, they install from it.
    await ctx.exec(['apt-get', 'install', '-y', '-q', '--download-only', 'dnsmasq', 'nginx', 'openssl', 'haproxy']);
    // Its uplink: a veth into the test's simulated internet.
    // Replaces the file the built-in system stage wrote for host0 (10-lab-<interface>.network).
    await ctx.writeFile('/etc/systemd/network/10-lab-host0.network', '[Match]\nName=host0\n\n[Network]\nAddress=198.51.100.2/24\nGateway=198.51.100.1\nLinkLocalAddressing=no\n');
    await ctx.enable('systemd-networkd');
  },
};
