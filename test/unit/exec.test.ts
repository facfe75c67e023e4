import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CommandError, run, spawnDetachedWithServers } from '../../lib/exec.js';

const MiB = 1024 * 1024;

/** The highest resident size seen while `work` runs, above the one before it. */
async function peakRssGrowth<T>(work: () => Promise<T>): Promise<{ value: T; growth: number }> {
  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  try {
    const value = await work();
    return { value, growth: Math.max(peak, process.memoryUsage().rss) - before };
  } finally {
    clearInterval(sampler);
  }
}

describe('run: a command that prints more than lab can hold', () => {
  it('keeps the tail of 300 MiB of output in memory and caps its log, with notes of what was cut', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-exec-'));
    const log = path.join(dir, 'stage.log');
    const { value: result, growth } = await peakRssGrowth(() =>
      run(['sh', '-c', 'yes | head -c 300M; echo; echo the-last-line'], { logFile: log, timeout: 60_000 }),
    );
    expect(result.exitCode).toBe(0);
    expect(growth).toBeLessThan(100 * MiB);
    expect(result.stdout.endsWith('y\n\nthe-last-line\n')).toBe(true);
    expect(result.stdout.length).toBeLessThanOrEqual(MiB);
    expect(result.cutBytes).toBe(300 * MiB + 15 - result.stdout.length);
    // The log stops at 64 MiB, and says how much of the command's output it dropped.
    expect(statSync(log).size).toBeLessThan(64 * MiB + 200);
    const end = readFileSync(log).subarray(-200).toString();
    expect(end).toMatch(/\[log limit reached: 236\.0 MiB of this command's output dropped\]\n\[exit 0, \d+ ms\]\n$/);
    rmSync(dir, { recursive: true });
  }, 60_000);

  it('keeps the last keepBytes of a stream, and a failure says how much came before', async () => {
    const result = await run(['sh', '-c', 'yes | head -c 10M; echo the-end'], { keepBytes: MiB });
    expect(result.stdout).toHaveLength(MiB);
    expect(result.stdout.endsWith('y\nthe-end\n')).toBe(true);
    expect(result.cutBytes).toBe(9 * MiB + 8);
    const failed = await run(['sh', '-c', 'yes | head -c 10M; echo the-end; exit 3'], { keepBytes: MiB }).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(CommandError);
    expect((failed as CommandError).message).toMatch(/\[9\.0 MiB of output before this not kept\]\n(y\n)*the-end$/);
  });

  it('keeps everything of a short output, and says nothing was cut', async () => {
    const result = await run(['sh', '-c', 'echo out; echo err >&2']);
    expect(result).toMatchObject({ stdout: 'out\n', stderr: 'err\n', exitCode: 0 });
    expect(result.cutBytes).toBeUndefined();
  });

  it('hands onLine a line without end in pieces, not as one string of the whole output', async () => {
    let longest = 0;
    let total = 0;
    await run(['sh', '-c', 'head -c 20M /dev/zero | tr "\\0" x'], { onLine: (line) => ((longest = Math.max(longest, line.length)), (total += line.length)), keepBytes: MiB });
    expect(total).toBe(20 * MiB);
    expect(longest).toBeLessThanOrEqual(128 * 1024);
  });
});

describe('run: lines that say nothing of the command', () => {
  it('are left out of its output, its log and its error, whatever the chunks they come in; the last line without its newline too', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-exec-'));
    const log = path.join(dir, 'stage.log');
    const script = 'printf "one\\nnoi"; sleep 0.05; printf "se: x\\ntwo\\n"; printf "%s: y\\nlast" noise >&2; exit 3';
    const error = (await run(['sh', '-c', script], { logFile: log, dropLines: /^noise: /, timeout: 10_000 }).catch((e: unknown) => e)) as CommandError;
    expect(error).toBeInstanceOf(CommandError);
    expect([error.result.stdout, error.result.stderr]).toEqual(['one\ntwo\n', 'last']);
    expect(error.message).not.toContain('noise: ');
    expect(readFileSync(log, 'utf8')).not.toContain('noise: ');
    rmSync(dir, { recursive: true });
  });
});

describe('spawnDetachedWithServers: a process handed sockets it could not make', () => {
  const child = (body: string) => [process.execPath, '-e', `process.on('message', (message, socket) => { ${body} }); process.send('waiting');`];

  it('hands each socket over once the process waits for it, and lets it go once it serves them', async () => {
    const log = path.join(mkdtempSync(path.join(tmpdir(), 'lab-exec-')), 'served.log');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const pid = await spawnDetachedWithServers(
      child("require('node:net').createServer((c) => c.end('served by ' + process.pid)).listen(socket, () => process.send('ready'));"),
      log,
      [server],
      5000,
    );
    server.close(); // the child holds its own copy
    try {
      const answer = await new Promise<string>((resolve, reject) => {
        let text = '';
        connect(port, '127.0.0.1').on('data', (chunk) => (text += chunk.toString())).on('end', () => resolve(text)).on('error', reject);
      });
      expect(answer).toBe(`served by ${pid}`);
      expect(readFileSync(log, 'utf8')).toMatch(/^\$ \S+ -e /);
    } finally {
      process.kill(pid, 'SIGKILL');
    }
  });

  it('fails, naming its log, when the process ends before it serves', async () => {
    const log = path.join(mkdtempSync(path.join(tmpdir(), 'lab-exec-')), 'served.log');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      await expect(spawnDetachedWithServers(child('process.exit(3);'), log, [server], 5000)).rejects.toThrow(`exited 3 before it served: see ${log}`);
    } finally {
      server.close();
    }
  });
});

describe('run: lines left out of a long output', () => {
  it('cost little: 200 MiB of short lines pass in seconds, a line longer than lab holds is passed on', async () => {
    const started = Date.now();
    const result = await run(['sh', '-c', 'yes | head -c 200M; head -c 200000 /dev/zero | tr "\\0" x'], { dropLines: /^noise: /, timeout: 60_000 });
    expect(result.cutBytes).toBe(200 * 1024 * 1024 + 200000 - result.stdout.length);
    expect(result.stdout.endsWith('x'.repeat(1000))).toBe(true);
    expect(Date.now() - started).toBeLessThan(30_000);
  }, 60_000);
});
