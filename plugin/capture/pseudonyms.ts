// Keyed pseudonyms: HMAC-SHA256 under a secret key that lives outside the audit store.
//
// A plain hash of an identifier is not a pseudonym: the set of usernames, or of IPv4 addresses
// (2^32), is small enough to hash completely, so anyone reading the store could reverse it. With
// a key, only the key holder can compute (and so link) pseudonyms; deleting the key makes every
// entry written under it anonymous for good, without touching the immutable store.
//
// Format: "hmac:<key id>:<64 hex chars>". The input is "<domain>\0<value>": the domain keeps
// different kinds of identifiers apart (a username that happens to equal a subject gives two
// unrelated pseudonyms), while the same kind gives the same pseudonym wherever it appears (an
// address as client_ip and in forwarded_for).
import { createHmac } from 'node:crypto';

export type PseudonymDomain = 'username' | 'custom_id' | 'ip' | 'subject';

export const PSEUDONYM_PATTERN = /^hmac:[A-Za-z0-9._-]{1,32}:[0-9a-f]{64}$/;

export interface PseudonymKey {
  id: string;
  secret: Buffer;
}

export function pseudonym(key: PseudonymKey, domain: PseudonymDomain, value: string): string {
  const mac = createHmac('sha256', key.secret).update(domain, 'utf8').update('\u0000', 'utf8').update(value, 'utf8').digest('hex');
  return `hmac:${key.id}:${mac}`;
}
