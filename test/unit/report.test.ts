import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { redact, REDACTED } from '../../lib/report/redact.js';
import { type RunReport, writeReports } from '../../lib/report/write.js';

describe('redaction', () => {
  it('takes the credentials of an Authorization header, keeping its scheme', () => {
    expect(redact('> Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ3ZWIifQ.c2lnbmF0dXJl\n> Accept: */*')).toBe(`> Authorization: Bearer ${REDACTED}\n> Accept: */*`);
    expect(redact('authorization: Basic d2ViOmh1bnRlcjI=')).toBe(`authorization: Basic ${REDACTED}`);
    expect(redact('Proxy-Authorization: Basic d2ViOmh1bnRlcjI=')).toBe(`Proxy-Authorization: Basic ${REDACTED}`);
    expect(redact('{"headers": {"Authorization": "Bearer abc.def"}}')).toBe(`{"headers": {"Authorization": "Bearer ${REDACTED}"}}`);
  });

  it('takes the value of a JSON password or client_secret, keeping the quotes', () => {
    expect(redact('{"user": "web", "password": "hunter2", "port": 5432}')).toBe(`{"user": "web", "password": "${REDACTED}", "port": 5432}`);
    expect(redact('{"client_id":"lab","client_secret":"s3cr3t-value"}')).toBe(`{"client_id":"lab","client_secret":"${REDACTED}"}`);
    expect(redact('{"password": "with \\"quotes\\" inside"}')).toBe(`{"password": "${REDACTED}"}`);
  });

  it('takes a PGP private key block whole, and leaves a public one', () => {
    const key = ['-----BEGIN PGP PRIVATE KEY BLOCK-----', '', 'lQOYBGXl0aABCAC7', 'x9Kq=', '-----END PGP PRIVATE KEY BLOCK-----'].join('\n');
    expect(redact(`before\n${key}\nafter`)).toBe(`before\n-----BEGIN PGP PRIVATE KEY BLOCK-----${REDACTED}-----END PGP PRIVATE KEY BLOCK-----\nafter`);
    const publicKey = ['-----BEGIN PGP PUBLIC KEY BLOCK-----', 'mQENBGXl0aABCAC7', '-----END PGP PUBLIC KEY BLOCK-----'].join('\n');
    expect(redact(publicKey)).toBe(publicKey);
    expect(redact('-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----')).toBe(`-----BEGIN OPENSSH PRIVATE KEY-----${REDACTED}-----END OPENSSH PRIVATE KEY-----`);
  });

  it('takes the password of a URL, keeping its user and host', () => {
    expect(redact('git clone https://deploy:glpat-xYz123@git.prolo/sadm.git')).toBe(`git clone https://deploy:${REDACTED}@git.prolo/sadm.git`);
    expect(redact('DATABASE_URL=postgres://app:pa55word@db.prolo:5432/app')).toBe(`DATABASE_URL=postgres://app:${REDACTED}@db.prolo:5432/app`);
  });

  it('keeps JSON valid: a secret inside a JSON string, quoted or not, is taken without its closing quote', () => {
    // An unquoted value ends at a space, a quote or a backslash (its comma goes with it: a password may hold one).
    const report = JSON.stringify({ message: 'curl said {"password": "x1"} and token=abc, then done', other: 'password: hunter2' });
    const clean = redact(report);
    expect(JSON.parse(clean)).toEqual({ message: `curl said {"password": "${REDACTED}"} and token=${REDACTED} then done`, other: `password: ${REDACTED}` });
  });

  it('leaves ordinary log lines as they are', () => {
    const lines = [
      'Sep 14 10:12:03 web nginx[231]: 10.224.0.16 - - [14/Sep/2025:10:12:03 +0000] "GET /index.html HTTP/1.1" 200 612 "-" "curl/7.88.1"',
      'Get:1 http://deb.debian.org/debian bookworm/main amd64 curl amd64 7.88.1-10+deb12u8 [315 kB]',
      'dnsmasq-dhcp[52]: DHCPACK(host0) 10.224.0.16 02:4c:61:62:00:01 web-silicon',
      'systemd[1]: Started ssh.service - OpenBSD Secure Shell server.',
      'HTTP/1.1 401 Authorization Required',
      'ssh://git@github.com/prologin/sadm.git at 12:00:00, fe80::1%host0 and http://10.224.0.10:8080/a@b',
      'the tokenizer read 3 tokens; secrets are in vault',
    ].join('\n');
    expect(redact(lines)).toBe(lines);
  });
});

describe('reports on disk', () => {
  const report: RunReport = {
    id: 'run-1',
    lab: 'lab',
    startedAt: '2025-01-01T00:00:00.000Z',
    durationMs: 1,
    passed: 0,
    failed: 1,
    skipped: 0,
    outcome: 'failed',
    scenarios: [],
    unhandled: [],
    timeline: [],
    machines: [{ machine: 'web', failedUnits: '', journal: 'web login: root password: hunter2\n' }],
  };
  const mode = (file: string) => statSync(file).mode & 0o777;

  it('are readable by their owner alone: the run directory 0700, every file in it 0600, also those others wrote', () => {
    const reports = mkdtempSync(path.join(tmpdir(), 'lab-reports-'));
    const run = path.join(reports, report.id);
    // What was there before the reports: vitest's JUnit file and a scenario's capture, made with the usual umask.
    mkdirSync(path.join(run, 'captures', 'nat'), { recursive: true, mode: 0o755 });
    writeFileSync(path.join(run, 'junit.xml'), '<testsuites/>', { mode: 0o644 });
    writeFileSync(path.join(run, 'captures', 'nat', 'prolo.pcap'), Buffer.from([0xd4, 0xc3, 0xb2, 0xa1]), { mode: 0o644 });
    expect(writeReports(reports, report)).toBe(run);
    expect(mode(run)).toBe(0o700);
    expect(mode(path.join(run, 'captures', 'nat'))).toBe(0o700);
    expect(mode(path.join(run, 'machines', 'web'))).toBe(0o700);
    for (const file of ['results.json', 'report.html', 'junit.xml', 'captures/nat/prolo.pcap', 'machines/web/journal.txt']) expect(mode(path.join(run, file)), file).toBe(0o600);
    expect(readFileSync(path.join(run, 'machines', 'web', 'journal.txt'), 'utf8')).toBe(`web login: root password: ${REDACTED}\n`);
    expect(readFileSync(path.join(run, 'captures', 'nat', 'prolo.pcap'))).toEqual(Buffer.from([0xd4, 0xc3, 0xb2, 0xa1]));
    rmSync(reports, { recursive: true });
  });
});
