// The privacy settings of one configuration, compiled once per instance into what capture
// needs: allow-lists with the never-stored names removed, path templates, the pseudonym key.
import type { PrivacyConfig, PseudonymizableField } from '../config/fields/privacy.js';
import { ConfigError } from '../config/kong-schema.js';
import { createLogger } from '../log.js';
import { isDeniedHeader, isSecretParam, parsePathTemplate, type PathTemplate } from './redaction.js';
import type { PseudonymKey } from './pseudonyms.js';

import { MIN_PSEUDONYM_KEY_LENGTH } from '../config/fields/privacy.js';
export { MIN_PSEUDONYM_KEY_LENGTH };

export interface PrivacyPolicy {
  /** Allow-listed request headers that may be stored (lower case, never-stored names removed). */
  requestHeaders: readonly string[];
  responseHeaders: readonly string[];
  /** Allow-listed query parameters (exact names). */
  queryParams: readonly string[];
  /** key-auth key names (lower case): never stored as headers, never with a value as parameters. */
  keyNames: ReadonlySet<string>;
  pathTemplates: readonly PathTemplate[];
  subjectHeaders: readonly string[];
  recordForwardedFor: boolean;
  pseudonymize: ReadonlySet<PseudonymizableField>;
  key: PseudonymKey | null;
  ipv4Prefix: number;
  ipv6Prefix: number;
  /** Allow-listed names that are never stored, per list (reported once at start). */
  refused: { request_headers: string[]; response_headers: string[] };
}

export type PrivacySettings = PrivacyConfig['privacy'];

/** The defaults of the privacy field group: nothing beyond the minimum. */
export const DEFAULT_PRIVACY: PrivacySettings = {
  request_headers: [],
  response_headers: [],
  query_params: [],
  key_names: [],
  path_redactions: [],
  subject_headers: [],
  record_forwarded_for: false,
  pseudonymize: [],
  pseudonym_key: null,
  pseudonym_key_id: null,
  ipv4_prefix: 32,
  ipv6_prefix: 128,
};

function unique(xs: readonly string[]): string[] {
  return [...new Set(xs)];
}

/**
 * Compiles resolved privacy settings (references already resolved). Throws a ConfigError for
 * combinations Kong's schema language cannot express (pseudonyms without a key).
 */
export function compilePrivacy(settings: PrivacySettings | undefined | null): PrivacyPolicy {
  const p = { ...DEFAULT_PRIVACY, ...(settings ?? {}) };
  const keyNames = new Set(p.key_names.map((k) => k.toLowerCase()));
  const refused = { request_headers: [] as string[], response_headers: [] as string[] };
  const headers = (list: readonly string[], which: keyof typeof refused) =>
    unique(list.map((h) => h.toLowerCase())).filter((h) => {
      if (!isDeniedHeader(h, keyNames)) return true;
      refused[which].push(h);
      return false;
    });

  const problems: string[] = [];
  let key: PseudonymKey | null = null;
  if (p.pseudonymize.length > 0) {
    if (!p.pseudonym_key) problems.push('privacy.pseudonym_key: required when privacy.pseudonymize is set');
    else if (p.pseudonym_key.length < MIN_PSEUDONYM_KEY_LENGTH) problems.push(`privacy.pseudonym_key: must be at least ${MIN_PSEUDONYM_KEY_LENGTH} characters (e.g. openssl rand -base64 48)`);
    if (!p.pseudonym_key_id) problems.push('privacy.pseudonym_key_id: required when privacy.pseudonymize is set (it is stored in every entry)');
    if (p.pseudonym_key && p.pseudonym_key.length >= MIN_PSEUDONYM_KEY_LENGTH && p.pseudonym_key_id) {
      key = { id: p.pseudonym_key_id, secret: Buffer.from(p.pseudonym_key, 'utf8') };
    }
  }
  p.path_redactions.forEach((tpl, i) => {
    if (/[?#\s]/.test(tpl)) problems.push(`privacy.path_redactions[${i + 1}]: a path template has no query string, fragment or whitespace`);
  });
  if (problems.length) throw new ConfigError(problems);

  return {
    requestHeaders: headers(p.request_headers, 'request_headers'),
    responseHeaders: headers(p.response_headers, 'response_headers'),
    queryParams: unique(p.query_params),
    keyNames,
    pathTemplates: p.path_redactions.map(parsePathTemplate),
    subjectHeaders: unique(p.subject_headers.map((h) => h.toLowerCase())),
    recordForwardedFor: p.record_forwarded_for,
    pseudonymize: new Set(p.pseudonymize),
    key,
    ipv4Prefix: p.ipv4_prefix,
    ipv6Prefix: p.ipv6_prefix,
    refused,
  };
}

export const DEFAULT_POLICY: PrivacyPolicy = compilePrivacy(DEFAULT_PRIVACY);

const logger = createLogger('privacy');

/** Says once per distinct list which allow-listed names are never stored, and why. */
export function reportRefused(policy: PrivacyPolicy): void {
  for (const [list, names] of Object.entries(policy.refused)) {
    if (names.length === 0) continue;
    logger.once('warn', `refused ${list} ${names.join(',')}`, `privacy.${list}: ${names.join(', ')} never stored (credentials or secret-looking names are excluded even when allow-listed)`);
  }
  const secretParams = policy.queryParams.filter((q) => isSecretParam(q, policy.keyNames));
  if (secretParams.length) {
    logger.once('warn', `secret params ${secretParams.join(',')}`, `privacy.query_params: ${secretParams.join(', ')} recorded as "[redacted]" only (secret-looking names or key names)`);
  }
}
