import { createReadStream, createWriteStream, mkdirSync, renameSync, rmSync, type Stats, statSync, type WriteStream } from 'node:fs';
import { Agent, createServer, type IncomingMessage, request as httpRequest, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import path from 'node:path';
import { cachedFile, judgeRequest } from './package-proxy-policy.js';

const UPSTREAM_IDLE_MS = 60_000;
/** Headers of one hop, never passed on (RFC 9110, 7.6.1), and the client's proxy headers. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
const REASONS = { 400: 'Not a proxy request', 403: 'Not a mirror of this lab', 405: 'Refused by the lab package proxy' } as const;

export interface PackageProxyOptions {
  mirrors: readonly string[];
  /** The shared cache (`cacheDir/packages/proxy`): `<host>/<path>` of each immutable file. */
  cacheDir: string;
  /** Told a line per request: time, client, method, URL, status, where the answer came from, bytes, duration. */
  log(line: string): void;
}

/**
 * The package proxy's HTTP side (see package-proxy-policy.ts for what it lets through): a request
 * to a mirror is answered from the shared cache, or forwarded from this process's network and
 * kept in the cache when its file never changes; any other request, and every CONNECT, is refused
 * with its status and the reason, in the reason phrase and the body. A line per request is logged.
 */
export function packageProxyServer(options: PackageProxyOptions): Server {
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  const server = createServer((req, res) => forward(req, res, agent, options));
  server.on('connect', (req: IncomingMessage, socket: Duplex) => refuseTunnel(req, socket, options));
  return server;
}

/** A request's line in the log. */
function requestLine(client: string | undefined, method: string | undefined, target: string | undefined, status: number, outcome: string, bytes: number, started: number): string {
  return `${new Date().toISOString()} ${client ?? '-'} ${method ?? '-'} ${target ?? '-'} ${status} ${outcome} ${bytes}B ${Date.now() - started}ms`;
}

function refuse(res: ServerResponse, status: 400 | 403 | 405, reason: string): void {
  const body = `lab's package proxy refused this request: ${reason}\n`;
  res.writeHead(status, REASONS[status], { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
  res.end(body);
}

function refuseTunnel(req: IncomingMessage, socket: Duplex, options: PackageProxyOptions): void {
  const started = Date.now();
  const client = req.socket.remoteAddress;
  const verdict = judgeRequest('CONNECT', req.url ?? '', options.mirrors);
  const reason = verdict.allowed ? '' : verdict.reason;
  const body = `lab's package proxy refused this request: ${reason}\n`;
  socket.on('error', () => undefined); // a client that resets the connection has its answer already
  socket.end(`HTTP/1.1 405 ${REASONS[405]}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  options.log(requestLine(client, 'CONNECT', req.url, 405, `REFUSED (${reason})`, 0, started));
}

function forward(req: IncomingMessage, res: ServerResponse, agent: Agent, options: PackageProxyOptions): void {
  const started = Date.now();
  const client = req.socket.remoteAddress;
  const log = (status: number, outcome: string, bytes: number) => options.log(requestLine(client, req.method, req.url, status, outcome, bytes, started));
  const verdict = judgeRequest(req.method ?? '', req.url ?? '', options.mirrors);
  if (!verdict.allowed) {
    refuse(res, verdict.status, verdict.reason);
    return log(verdict.status, `REFUSED (${verdict.reason})`, 0);
  }
  const file = verdict.cacheable ? cachedFile(options.cacheDir, verdict.url) : undefined;
  if (file && serveCached(req, res, file, (bytes) => log(res.statusCode, 'from cache', bytes))) return;
  const headers = Object.fromEntries(Object.entries(req.headers).filter(([name]) => !HOP_BY_HOP.has(name)));
  const upstream = httpRequest(verdict.url, { method: req.method, headers: { ...headers, host: verdict.url.host }, agent, timeout: UPSTREAM_IDLE_MS }, (reply) => {
    const status = reply.statusCode ?? 502;
    res.writeHead(status, reply.statusMessage, Object.fromEntries(Object.entries(reply.headers).filter(([name]) => !HOP_BY_HOP.has(name))) as Record<string, string | string[]>);
    // Only a whole file is kept: a 200 to a GET without a range.
    const copy = file && status === 200 && !req.headers.range ? new CacheCopy(file) : undefined;
    let bytes = 0;
    reply.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      copy?.write(chunk);
    });
    reply.pipe(res);
    reply.on('end', () => {
      const whole = reply.complete && (reply.headers['content-length'] === undefined || Number(reply.headers['content-length']) === bytes);
      if (!copy) return log(status, 'from mirror', bytes);
      copy.finish(whole, (kept) => log(status, `from mirror, ${kept}`, bytes));
    });
    reply.on('error', () => copy?.finish(false, () => undefined));
  });
  upstream.on('timeout', () => upstream.destroy(new Error(`no answer from the mirror within ${UPSTREAM_IDLE_MS / 1000} s`)));
  upstream.on('error', (error) => {
    if (!res.headersSent) {
      const body = `lab's package proxy could not reach the mirror: ${error.message}\n`;
      res.writeHead(502, 'Mirror unreachable', { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    } else res.destroy();
    log(502, `FAILED (${error.message})`, 0);
  });
  res.on('close', () => {
    if (res.writableFinished) return;
    upstream.destroy(); // the client left before the end: nothing to finish for it
    log(res.statusCode, 'client left before the end', 0);
  });
  req.pipe(upstream);
}

/** A cached file, whole or from an offset (`Range: bytes=N-` or `bytes=N-M`, what apt sends to resume); false when it is not in the cache. */
function serveCached(req: IncomingMessage, res: ServerResponse, file: string, done: (bytes: number) => void): boolean {
  let stat: Stats;
  try {
    stat = statSync(file);
  } catch {
    return false;
  }
  const size = stat.size;
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  const start = range ? Number(range[1]) : 0;
  const end = range && range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
  const type = file.endsWith('deb') ? 'application/vnd.debian.binary-package' : 'application/octet-stream';
  if (range && start >= size) {
    res.writeHead(416, { 'content-range': `bytes */${size}`, 'content-length': 0 });
    res.end(() => done(0));
    return true;
  }
  const headers = { 'content-type': type, 'content-length': end - start + 1, 'accept-ranges': 'bytes', 'last-modified': stat.mtime.toUTCString() };
  res.writeHead(range ? 206 : 200, range ? { ...headers, 'content-range': `bytes ${start}-${end}/${size}` } : headers);
  if (req.method === 'HEAD') {
    res.end(() => done(0));
    return true;
  }
  const stream = createReadStream(file, { start, end });
  stream.on('error', () => res.destroy());
  stream.pipe(res).on('finish', () => done(end - start + 1));
  return true;
}

/**
 * A file on its way into the shared cache: written aside (`.partial`, named after this process),
 * renamed into place once whole, removed otherwise. A full disk or a rename that fails costs the
 * cache its copy, never the client its answer.
 */
class CacheCopy {
  private readonly partial: string;
  private stream?: WriteStream;
  private failed?: string;

  constructor(private readonly file: string) {
    this.partial = `${file}.${process.pid}.${Date.now()}.partial`;
    try {
      mkdirSync(path.dirname(file), { recursive: true });
      this.stream = createWriteStream(this.partial);
      this.stream.on('error', (error) => (this.failed = error.message));
    } catch (error) {
      this.failed = (error as Error).message;
    }
  }

  write(chunk: Buffer): void {
    if (!this.failed) this.stream?.write(chunk);
  }

  /** Ends the copy, told what became of it: cached, or why not. */
  finish(whole: boolean, told: (kept: string) => void): void {
    const settle = () => {
      let kept = 'cached';
      try {
        if (this.failed) kept = `not cached (${this.failed})`;
        else if (!whole) kept = 'incomplete: not cached';
        if (kept === 'cached') renameSync(this.partial, this.file);
        else rmSync(this.partial, { force: true });
      } catch (error) {
        kept = `not cached (${(error as Error).message})`;
        rmSync(this.partial, { force: true });
      }
      told(kept);
    };
    if (!this.stream || this.stream.destroyed) settle();
    else this.stream.end(settle);
  }
}
