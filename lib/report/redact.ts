/**
 * Secrets never reach a report: private keys, and values of anything that names itself a
 * password, secret or token. Applied to every file a report writes, whatever produced it.
 */
const PRIVATE_KEY = /-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]*?(-----END \1PRIVATE KEY-----|$)/g;
const NAMED_SECRET = /\b((?:[\w-]*(?:password|passwd|secret|token|api[_-]?key)[\w-]*)\s*[:=]\s*)("[^"]*"|'[^']*'|\S+)/gi;

export const REDACTED = '[REDACTED]';

export function redact(text: string): string {
  return text.replace(PRIVATE_KEY, `-----BEGIN $1PRIVATE KEY-----${REDACTED}-----END $1PRIVATE KEY-----`).replace(NAMED_SECRET, `$1${REDACTED}`);
}
