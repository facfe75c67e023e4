/**
 * The simulated internet's one service, run inside the lab's WAN namespace: it answers every
 * HTTP request with the address the request came from, so a test can see NAT at work.
 * Usage: node wan-echo.js ADDRESS PORT READY_FILE
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

const [address, port, readyFile] = process.argv.slice(2);
const server = createServer((request, response) => {
  response.writeHead(200, { 'content-type': 'text/plain' });
  response.end(`${request.socket.remoteAddress ?? ''}\n`);
});
server.listen(Number(port), address, () => writeFileSync(readyFile, `${process.pid}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
