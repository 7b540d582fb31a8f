// Who may read the console: anyone on this machine when it listens on loopback only (and no
// credentials are configured); otherwise only requests carrying the configured bearer token or
// basic-auth credentials. Credentials come from a file or the environment, never a flag value.
import { timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

export type Credentials = { kind: 'bearer'; token: string } | { kind: 'basic'; userPass: string };

export class AuthConfigError extends Error {
  override readonly name = 'AuthConfigError';
}

/** 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

const firstLine = (text: string) => text.split(/\r?\n/)[0]!.trim();

/**
 * The credentials from --token-file / --basic-auth-file, else IMMUDB_AUDIT_CONSOLE_TOKEN /
 * IMMUDB_AUDIT_CONSOLE_BASIC_AUTH ("user:password"); none is allowed only on loopback.
 */
export function loadCredentials(o: { host: string; tokenFile?: string; basicAuthFile?: string }, env: NodeJS.ProcessEnv = process.env): Credentials | undefined {
  if (o.tokenFile && o.basicAuthFile) throw new AuthConfigError('give --token-file or --basic-auth-file, not both');
  let c: Credentials | undefined;
  if (o.tokenFile) c = { kind: 'bearer', token: firstLine(readFileSync(o.tokenFile, 'utf8')) };
  else if (o.basicAuthFile) c = { kind: 'basic', userPass: firstLine(readFileSync(o.basicAuthFile, 'utf8')) };
  else if (env.IMMUDB_AUDIT_CONSOLE_TOKEN) c = { kind: 'bearer', token: env.IMMUDB_AUDIT_CONSOLE_TOKEN.trim() };
  else if (env.IMMUDB_AUDIT_CONSOLE_BASIC_AUTH) c = { kind: 'basic', userPass: env.IMMUDB_AUDIT_CONSOLE_BASIC_AUTH.trim() };
  if (c?.kind === 'bearer' && c.token.length < 16) throw new AuthConfigError('the console token must be at least 16 characters');
  if (c?.kind === 'basic' && !/^[^:]+:.{8,}$/.test(c.userPass)) throw new AuthConfigError('basic-auth credentials must be "user:password" with a password of at least 8 characters');
  if (!c && !isLoopback(o.host)) {
    throw new AuthConfigError(`listening on ${o.host} (not loopback) needs credentials: --token-file, --basic-auth-file, IMMUDB_AUDIT_CONSOLE_TOKEN or IMMUDB_AUDIT_CONSOLE_BASIC_AUTH`);
  }
  return c;
}

/** Compares digests, so neither the length nor the content leaks through timing. */
const same = (a: string, b: string) => timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());

/** Whether an Authorization header carries the credentials (always true without credentials). */
export function authorized(c: Credentials | undefined, header: string | undefined): boolean {
  if (!c) return true;
  if (!header) return false;
  const m = /^(\S+)\s+(\S+)$/.exec(header.trim());
  if (!m) return false;
  if (c.kind === 'bearer') return m[1]!.toLowerCase() === 'bearer' && same(m[2]!, c.token);
  if (m[1]!.toLowerCase() !== 'basic') return false;
  return same(Buffer.from(m[2]!, 'base64').toString('utf8'), c.userPass);
}

/** The WWW-Authenticate challenge of a 401. */
export const challenge = (c: Credentials) => (c.kind === 'basic' ? 'Basic realm="immudb-audit", charset="UTF-8"' : 'Bearer realm="immudb-audit"');
