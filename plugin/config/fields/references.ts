// The shape of the references the plugin server resolves itself (env:<VARIABLE>, file:<absolute
// path>; plugin/capture/secret-refs.ts), as schema validators Kong evaluates too: a malformed
// reference is refused by the Admin API, not at the route's first request. Whether the variable
// or the file exists is known only to the plugin server (checked at StartInstance). The patterns
// mean the same as Lua patterns and as RegExps (test/unit/kong-yml.test.ts).
import type { KongField } from '../kong-schema.js';

type StringField = Extract<KongField, { type: 'string' }>;

export const REFERENCE_SHAPE: NonNullable<StringField['match_none']> = [
  { pattern: '^env:$', err: 'env: reference without a variable name' },
  { pattern: '^env:[0-9]', err: 'invalid environment variable name in env: reference' },
  { pattern: '^env:.*[^A-Za-z0-9_]', err: 'invalid environment variable name in env: reference' },
  { pattern: '^file:[^/]', err: 'file: reference must be an absolute path' },
  { pattern: '^file:$', err: 'file: reference must be an absolute path' },
];

/**
 * PEM material of one kind, or a reference to it. `marker` is text of its BEGIN line without
 * dashes (a `-` is a quantifier in a Lua pattern).
 */
export function pemOrReference(marker: string, what: string): NonNullable<StringField['match_any']> {
  return { patterns: ['^env:', '^file:', marker], err: `expected ${what} in PEM (a -----BEGIN ...----- block), env:<VARIABLE>, file:<absolute path> or a vault reference` };
}
