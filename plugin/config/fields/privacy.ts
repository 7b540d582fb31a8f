// What an audit entry may contain beyond the minimum: allow-lists of headers and query
// parameters, the authenticated subject, forwarded addresses, and keyed pseudonyms / address
// truncation for identifiers that are personal data. Everything defaults to "not recorded".
// Rules that no configuration can override (secret headers, secret-looking names) live in
// plugin/capture/redaction.ts; docs/security.md explains them.
import type { KongField, KongFieldList } from '../kong-schema.js';
import { REFERENCE_SHAPE } from './references.js';

export const PSEUDONYMIZABLE = ['consumer_username', 'consumer_custom_id', 'client_ip', 'forwarded_for', 'subject'] as const;
export type PseudonymizableField = (typeof PSEUDONYMIZABLE)[number];

export interface PrivacyConfig {
  privacy: {
    request_headers: string[];
    response_headers: string[];
    query_params: string[];
    key_names: string[];
    path_redactions: string[];
    subject_headers: string[];
    record_forwarded_for: boolean;
    pseudonymize: PseudonymizableField[];
    pseudonym_key: string | null;
    pseudonym_key_id: string | null;
    ipv4_prefix: number;
    ipv6_prefix: number;
  };
}

/**
 * An HTTP header field name (RFC 9110 token, without '%'). Kong's `match` is a Lua pattern and
 * ours a RegExp: the patterns here mean the same in both (no quantifier braces, no escapes),
 * lengths go in len_min/len_max.
 */
const HEADER_NAME = "^[A-Za-z0-9!#$&'*+.^_`|~-]+$";
const headerName: KongField = { type: 'string', match: HEADER_NAME, len_min: 1, len_max: 128 };
const headerList = (description: string): KongField => ({
  type: 'array', required: true, default: [], len_max: 64, elements: headerName, description,
});

/** Shortest pseudonym key (HMAC-SHA256: 32 characters of a random base64 string, at least 192 bits). */
export const MIN_PSEUDONYM_KEY_LENGTH = 32;

/**
 * A literal key of at least MIN_PSEUDONYM_KEY_LENGTH characters, or an env:/file: reference the
 * plugin resolves itself (checked again once resolved). A vault reference skips validators in
 * Kong and reaches the plugin resolved.
 */
const PSEUDONYM_KEY_PATTERNS = ['^env:[A-Za-z_]', '^file:/', `^${'.'.repeat(MIN_PSEUDONYM_KEY_LENGTH)}`];

export const privacyFields: KongFieldList = [
  {
    privacy: {
      type: 'record',
      entity_checks: [
        { conditional_at_least_one_of: { if_field: 'pseudonymize', if_match: { len_min: 1 }, then_at_least_one_of: ['pseudonym_key'], then_err: 'privacy.pseudonymize needs the secret %s (a vault reference, env:<VARIABLE> or file:<absolute path>)' } },
        { conditional_at_least_one_of: { if_field: 'pseudonymize', if_match: { len_min: 1 }, then_at_least_one_of: ['pseudonym_key_id'], then_err: 'privacy.pseudonymize needs %s, the name of the key stored in every entry (e.g. 2026-q1)' } },
      ],
      description: 'What an entry may hold beyond the minimum (who, what, when, where, outcome). Secrets are never stored, whatever is allow-listed.',
      fields: [
        { request_headers: headerList('Request headers stored by name (case-insensitive). authorization, proxy-authorization, cookie, set-cookie, apikey, x-api-key, the key_names and any name that looks like a secret (token, key, password, secret, signature, session, auth...) are never stored, even if listed.') },
        { response_headers: headerList('Response headers stored by name; the same names are never stored.') },
        { query_params: { type: 'array', required: true, default: [], len_max: 64, elements: { type: 'string', len_min: 1, len_max: 128 }, description: 'Query parameters stored by name (exact match). Parameters whose name looks like a secret (token, key, password, secret, signature...) or is one of key_names are recorded as "[redacted]", never with their value.' } },
        { key_names: { type: 'array', required: true, default: [], len_max: 32, elements: headerName, description: "The key names of the route's key-auth plugin (its key_names; apikey and x-api-key are always excluded): never stored as headers, never with a value as query parameters." } },
        { path_redactions: { type: 'array', required: true, default: [], len_max: 64, elements: { type: 'string', match: '^/', len_max: 512, match_none: [{ pattern: '[?# \t\n\r]', err: 'a path template has no query string, fragment or whitespace' }] }, description: 'Path templates whose secret segments are replaced by {redacted}: literal segments match exactly, * matches any one segment (kept), :redact matches any one segment (replaced); e.g. /password-reset/:redact. A template applies to the leading segments of a path.' } },
        { subject_headers: headerList('Request headers that the route\'s authentication plugin sets (or clears) with the verified subject, e.g. x-authenticated-userid (oauth2), x-credential-identifier, or an openid-connect upstream_headers_claims header. The first one present is stored as who.subject, only when Kong authenticated the request (a credential is present); a client-sent header on an unauthenticated request is ignored.') },
        { record_forwarded_for: { type: 'boolean', required: true, default: false, description: 'Also store the addresses of X-Forwarded-For / Forwarded (as sent by the client and proxies: unverified) in who.forwarded_for. who.client_ip is always the address Kong resolved (trusted_ips, real_ip_header).' } },
        { pseudonymize: { type: 'array', required: true, default: [], len_max: 5, elements: { type: 'string', one_of: [...PSEUDONYMIZABLE] }, description: 'Identifiers replaced by a keyed pseudonym, HMAC-SHA256 under pseudonym_key: "hmac:<pseudonym_key_id>:<hex>".' } },
        { pseudonym_key: { type: 'string', referenceable: true, encrypted: true, len_min: 1, match_none: REFERENCE_SHAPE, match_any: { patterns: PSEUDONYM_KEY_PATTERNS, err: `must be at least ${MIN_PSEUDONYM_KEY_LENGTH} characters (e.g. openssl rand -base64 48), or a reference: {vault://...}, env:<VARIABLE>, file:<absolute path>` }, description: 'Secret key of the pseudonyms (at least 32 characters): a vault reference ({vault://env/...}), env:<VARIABLE> (read from the plugin server\'s environment) or file:<absolute path>. Deleting a key anonymises every entry written under it.' } },
        { pseudonym_key_id: { type: 'string', match: '^[A-Za-z0-9._-]+$', len_min: 1, len_max: 32, description: 'Name of pseudonym_key, stored in every entry, so that keys can rotate (e.g. 2026-q1).' } },
        { ipv4_prefix: { type: 'integer', required: true, default: 32, between: [8, 32], description: 'Store IPv4 addresses truncated to this network prefix (24: 203.0.113.0/24); 32 keeps the address.' } },
        { ipv6_prefix: { type: 'integer', required: true, default: 128, between: [16, 128], description: 'Store IPv6 addresses truncated to this network prefix (48: 2001:db8:1::/48); 128 keeps the address.' } },
      ],
    },
  },
];
