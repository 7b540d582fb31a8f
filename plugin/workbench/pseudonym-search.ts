// Searching pseudonymised fields by their clear value: the CLI computes the pseudonym with the
// plugin's own function (capture/pseudonyms.ts) under the key the auditor holds, and looks for
// both the clear value and that pseudonym. Also what `immudb-audit hash` prints.
import { readFileSync } from 'node:fs';
import { PSEUDONYMIZABLE, type PseudonymizableField } from '../config/fields/privacy.js';
import { formatIp, maskIp, parseIp } from '../capture/ip-address.js';
import { MIN_PSEUDONYM_KEY_LENGTH } from '../capture/privacy-policy.js';
import { pseudonym, type PseudonymDomain, type PseudonymKey } from '../capture/pseudonyms.js';

/** Thrown for a bad key file or key id: a usage error. */
export class PseudonymKeyError extends Error {
  override readonly name = 'PseudonymKeyError';
}

const KEY_ID = /^[A-Za-z0-9._-]{1,32}$/;

/**
 * The key as the plugin uses it (privacy.pseudonym_key, e.g. from file:<path>): the file's text
 * without one trailing newline, as UTF-8 bytes, under the id stored in the entries.
 */
export function readPseudonymKey(file: string, id: string | undefined): PseudonymKey {
  if (!id) throw new PseudonymKeyError('--pseudonym-key-id is required with --pseudonym-key-file (the privacy.pseudonym_key_id of the configuration)');
  if (!KEY_ID.test(id)) throw new PseudonymKeyError(`--pseudonym-key-id ${JSON.stringify(id)}: expected 1-32 characters of A-Z a-z 0-9 . _ -`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    throw new PseudonymKeyError(`cannot read --pseudonym-key-file ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (text.length < MIN_PSEUDONYM_KEY_LENGTH) throw new PseudonymKeyError(`--pseudonym-key-file ${file}: a pseudonym key has at least ${MIN_PSEUDONYM_KEY_LENGTH} characters`);
  return { id, secret: Buffer.from(text, 'utf8') };
}

/**
 * An address as the plugin stores it: the canonical text of an address, or of a network
 * ("203.0.113.0/24", what truncation to a prefix writes). Null when `text` is neither.
 */
export function storedIpText(text: string): string | null {
  const slash = text.indexOf('/');
  const ip = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!ip) return null;
  if (slash < 0) return formatIp(ip);
  const bits = text.slice(slash + 1);
  const full = ip.family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > full) return null;
  return Number(bits) === full ? formatIp(ip) : `${formatIp(maskIp(ip, Number(bits)))}/${Number(bits)}`;
}

/** The pseudonym domain of each field that can be pseudonymised (build-entry.ts). */
export const FIELD_DOMAIN: Record<PseudonymizableField, PseudonymDomain> = {
  consumer_username: 'username',
  consumer_custom_id: 'custom_id',
  client_ip: 'ip',
  forwarded_for: 'ip',
  subject: 'subject',
};
export const PSEUDONYM_FIELDS = PSEUDONYMIZABLE;

/** The value of a field as stored when pseudonymised; null when it cannot hold `value` (not an address). */
export function pseudonymOf(key: PseudonymKey, field: PseudonymizableField, value: string): string | null {
  const domain = FIELD_DOMAIN[field];
  if (domain !== 'ip') return pseudonym(key, domain, value);
  const ip = storedIpText(value);
  return ip === null ? null : pseudonym(key, 'ip', ip);
}

/** What to look for in a field: the clear value and, with a key, its pseudonym. */
export function candidates(key: PseudonymKey | undefined, field: PseudonymizableField, value: string): string[] {
  const p = key ? pseudonymOf(key, field, value) : null;
  return p ? [value, p] : [value];
}
