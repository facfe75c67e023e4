/**
 * lab's package proxy, one process per lab (see package-proxy.ts, its driver). Two steps:
 *
 *   node package-proxy-server.js listen SETTINGS [HOST_NETNS]
 *     run in the lab's network namespace: makes the listening sockets there, then starts the
 *     proxy itself detached, back in HOST_NETNS (lab's own), and hands them over. Exits.
 *   node package-proxy-server.js serve SETTINGS
 *     the proxy: accepts on the sockets it was handed, forwards to the lab's mirrors from the
 *     host's network, keeps immutable files in the shared cache, logs a line per request on
 *     its output (the lab's logs/package-proxy.log).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { packageProxyServer } from './package-proxy-http.js';
import type { PackageProxySettings } from './package-proxy-policy.js';

const HANDOVER_MS = 10_000;

const [step, settingsFile, hostNetns] = process.argv.slice(2);
const settings = JSON.parse(readFileSync(settingsFile!, 'utf8')) as PackageProxySettings;

if (step === 'listen') await listen();
else if (step === 'serve') serve();
else throw new Error(`usage: package-proxy-server.js listen|serve SETTINGS [HOST_NETNS]`);

async function listen(): Promise<void> {
  const servers = await Promise.all(
    settings.addresses.map(
      (address) =>
        new Promise<Server>((resolve, reject) => {
          const server = createNetServer();
          server.once('error', (error) => reject(new Error(`cannot listen on ${address}:${settings.port}: ${error.message}`)));
          server.listen({ host: address, port: settings.port, exclusive: true }, () => resolve(server));
        }),
    ),
  );
  // Loaded here only: the proxy itself starts without it.
  const { REACH_ANY_PATH, spawnDetachedWithServers, withCapabilities } = await import('../exec.js');
  // Its connections to the mirrors go out of lab's own namespace (the host's network), never a lab network.
  const script = fileURLToPath(import.meta.url);
  const proxy = withCapabilities([REACH_ANY_PATH], [process.execPath, script, 'serve', settingsFile!]);
  const pid = await spawnDetachedWithServers(hostNetns ? ['nsenter', `--net=${hostNetns}`, '--', ...proxy] : proxy, settings.logFile, servers, HANDOVER_MS);
  for (const server of servers) server.close();
  process.stdout.write(`${pid}\n`);
}

function serve(): void {
  let listening = 0;
  const log = (line: string) => process.stdout.write(`${line}\n`);
  process.on('message', (message: { server?: number }, socket: unknown) => {
    if (message?.server === undefined || !socket) return;
    packageProxyServer({ mirrors: settings.mirrors, cacheDir: settings.cacheDir, log }).listen(socket as Server, () => {
      if (++listening < settings.addresses.length) return;
      writeFileSync(settings.readyFile, `${process.pid}\n`);
      process.send?.('ready');
    });
  });
  process.on('SIGTERM', () => process.exit(0));
  process.send?.('waiting');
}
