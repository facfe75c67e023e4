// A lab built to fail in known ways, for the harness's own tests: a unit that cannot start.
export default {
  async run(ctx) {
    await ctx.writeFile('/etc/systemd/system/doomed.service', '[Unit]\nDescription=A service that fails on purpose\n[Service]\nType=oneshot\nExecStart=/bin/sh -c "echo doomed-service-says-goodbye; exit 3"\n[Install]\nWantedBy=multi-user.target\n');
    await ctx.writeFile('/etc/solo-marker', 'present\n');
    await ctx.enable('doomed.service');
  },
};
