import { execa } from 'execa';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hostTraces, lab, labOk, repoRoot, soloLab, uniqueName } from './helpers.js';

/** A machine answering `hello` on TCP port 80 (systemd's own socket, nothing installed), published on 8080. */
const HELLO_STAGE = `export default { async run(ctx) {
  await ctx.writeFile('/etc/systemd/system/hello.socket', '[Socket]\\nListenStream=80\\nAccept=yes\\n[Install]\\nWantedBy=sockets.target\\n');
  await ctx.writeFile('/etc/systemd/system/hello@.service', '[Service]\\nExecStart=/bin/echo hello\\nStandardOutput=socket\\n');
  await ctx.enable('hello.socket');
} };
`;
const SOLO = '10.224.0.9';

/** What a TCP client in namespace `netns` gets from address:port within 3 s: the first line, or nothing. */
async function tcpFrom(netns: string, address: string, port: number): Promise<string> {
  const reply = await execa('ip', ['netns', 'exec', netns, 'timeout', '3', 'bash', '-c', `exec 3<>/dev/tcp/${address}/${port} && head -n 1 <&3`], { reject: false });
  return reply.stdout.trim();
}

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

describe("inbound through the lab's NAT: replies and published ports only", () => {
  it('in sandbox mode, a route to the zone added in the simulated internet reaches no machine; the published port does', async () => {
    const name = uniqueName('natsb');
    const { config } = soloLab({ hello: HELLO_STAGE }, [`name: ${name}`]);
    writeMachinePublish(config);
    cleanups.push(() => lab(['--config', config, 'destroy']));
    await labOk(['--config', config, 'up']);
    const wan = `lab-${name}-wan`;
    const uplink = (await execa('ip', ['-n', `lab-${name}`, '-4', '-o', 'address', 'show', 'dev', 'uplink'])).stdout.split(/\s+/)[3]!.split('/')[0]!;
    // As an attacker next to the lab's uplink would: route the zone's subnet through it.
    await execa('ip', ['-n', wan, 'route', 'replace', '10.224.0.0/24', 'via', uplink]);
    expect(await tcpFrom(wan, uplink, 8080)).toBe('hello');
    expect(await tcpFrom(wan, SOLO, 80)).toBe('');
    // From inside the lab it answers: the drop is of new inbound connections, not of the service.
    expect(await tcpFrom(`lab-${name}`, SOLO, 80)).toBe('hello');
    await labOk(['--config', config, 'destroy']);
    expect(hostTraces(name)).toEqual([]);
  });

  it('in host mode (the host forwards), the same: here the host is a namespace of the test, with a client beside it', async () => {
    const name = uniqueName('natho');
    const host = `labtest-${name}`;
    const client = `labtest-${name}-c`;
    const { config } = soloLab({ hello: HELLO_STAGE }, [`name: ${name}`, 'network: { mode: host }']);
    writeMachinePublish(config);
    for (const ns of [host, client]) {
      await execa('ip', ['netns', 'add', ns]);
      cleanups.push(() => execa('ip', ['netns', 'delete', ns], { reject: false }));
      await execa('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    await execa('ip', ['-n', host, 'link', 'add', 'out', 'type', 'veth', 'peer', 'name', 'in', 'netns', client]);
    await execa('ip', ['-n', host, 'address', 'add', '192.0.2.1/24', 'dev', 'out']);
    await execa('ip', ['-n', client, 'address', 'add', '192.0.2.2/24', 'dev', 'in']);
    for (const [ns, dev] of [[host, 'out'], [client, 'in']] as const) await execa('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    await execa('ip', ['-n', client, 'route', 'add', '10.224.0.0/24', 'via', '192.0.2.1']);
    // nsenter, not ip netns exec: that one mounts a sysfs of the namespace's own, without the cgroup hierarchy nspawn needs.
    const inHost = (args: string[]) => execa('nsenter', [`--net=/run/netns/${host}`, '--', process.execPath, path.join(repoRoot, 'bin', 'lab.js'), '--config', config, ...args], { reject: false });
    cleanups.push(() => inHost(['destroy']));
    const up = await inHost(['up']);
    expect(up.exitCode, `${up.stdout}\n${up.stderr}`).toBe(0);
    expect(await tcpFrom(client, '192.0.2.1', 8080)).toBe('hello');
    expect(await tcpFrom(client, SOLO, 80)).toBe('');
    expect(await tcpFrom(host, SOLO, 80)).toBe('hello');
    expect((await inHost(['destroy'])).exitCode).toBe(0);
    expect(hostTraces(name)).toEqual([]);
  });
});

/** solo publishes its port 80 as 8080 on the host side. */
function writeMachinePublish(config: string): void {
  writeFileSync(config, readFileSync(config, 'utf8').replace(`    address: ${SOLO}\n`, `    address: ${SOLO}\n    publish: [{ port: 80, hostPort: 8080 }]\n`));
}
