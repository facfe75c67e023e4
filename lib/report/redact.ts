/**
 * Secrets never reach a report: private keys (PEM, OpenSSH, PGP), credentials in URLs and in
 * Authorization headers, and values of anything that names itself a password, secret or token.
 * Applied to every file a report writes, whatever produced it, JSON included: a quoted value keeps
 * its quotes and an unquoted one stops before a quote or backslash, so results.json stays JSON.
 */
const PRIVATE_KEY = /-----BEGIN ([A-Z ]*PRIVATE KEY(?: BLOCK)?)-----[\s\S]*?(-----END \1-----|$)/g;
/** `scheme://user:password@host`: the password goes, the user and host stay. */
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@"'\\]+:)[^\s/@"'\\]+@/gi;
/** `Authorization: Bearer …`, `Proxy-Authorization: Basic …`, `"authorization": "…"`: the scheme stays. */
const AUTHORIZATION = /\b((?:proxy-)?authorization\\?["']?\s*[:=]\s*\\?["']?(?:(?:bearer|basic|digest|token|negotiate)\s+)?)[^\r\n"'\\]+/gi;
/**
 * `password=x`, `PASSWORD: 'x'`, `"client_secret": "x"` (and `\"token\": \"x\"` inside a JSON
 * string): the key, an optional closing quote of the key, `:` or `=`, then the value.
 */
const NAMED_SECRET = /\b([\w-]*(?:password|passwd|secret|token|api[_-]?key)[\w-]*(\\?["'])?\s*[:=]\s*)(\\"(?:(?!\\")[^\n])*\\"|"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s"'\\&]+)/gi;

export const REDACTED = '[REDACTED]';

/** A quoted value keeps its quotes (escaped ones too), so that the text around it still parses. */
function redactValue(value: string): string {
  const quote = /^(\\?["'])/.exec(value)?.[1];
  return quote ? `${quote}${REDACTED}${quote}` : REDACTED;
}

export function redact(text: string): string {
  return text
    .replace(PRIVATE_KEY, `-----BEGIN $1-----${REDACTED}-----END $1-----`)
    .replace(URL_CREDENTIALS, `$1${REDACTED}@`)
    .replace(AUTHORIZATION, `$1${REDACTED}`)
    .replace(NAMED_SECRET, (_match, key: string, _keyQuote: string | undefined, value: string) => `${key}${redactValue(value)}`);
}
