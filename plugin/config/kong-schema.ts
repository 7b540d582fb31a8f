// A subset of Kong's schema language (kong/db/schema) for declaring the plugin's configuration,
// and a validator with Kong's semantics for that subset: defaults filled in, types checked,
// `required`, `between`, `one_of`, `match`, `match_any`, `match_none`, `len_min`/`len_max`,
// `gt`, `eq: null`, a field's own message (`err`), nested records and arrays, the entity checks
// `conditional` and `mutually_required` of a record, and unknown fields rejected. Kong
// evaluates all of these for an external plugin's schema (docs/decisions.md #17), so the Admin
// API and decK refuse what StartInstance would; we use this one to normalise the config we
// receive (the same messages) and to check kong.yml files in tests. Patterns here must mean
// the same as a Lua pattern and as a RegExp (test/unit/kong-yml.test.ts checks that).

export type KongField =
  | ({ type: 'string'; default?: string | null; one_of?: string[]; match?: string; match_any?: { patterns: string[]; err: string }; match_none?: Array<{ pattern: string; err: string }>; len_min?: number; len_max?: number; encrypted?: boolean; referenceable?: boolean } & Common)
  | ({ type: 'integer'; default?: number | null; between?: [number, number]; gt?: number; one_of?: number[] } & Common)
  | ({ type: 'number'; default?: number | null; between?: [number, number]; gt?: number } & Common)
  | ({ type: 'boolean'; default?: boolean | null } & Common)
  | ({ type: 'array'; default?: unknown[] | null; elements: KongField; len_max?: number } & Common)
  | ({ type: 'record'; fields: KongFieldList; entity_checks?: KongEntityCheck[] } & Common);

interface Common {
  required?: boolean;
  description?: string;
  /** Kong's `err`: the message of any failed validator of this field (not of `required`). */
  err?: string;
  /** Kong's `eq`; only `null` is used: any value is refused with `err` (a retired or foreign field). */
  eq?: null;
}

/**
 * Kong's entity checks of a record (kong/db/schema/init.lua Schema.entity_checkers), the two we
 * use. `conditional_at_least_one_of`: when if_field passes if_match (here: an array with at
 * least len_min elements), one of the listed fields must be non-empty; Kong reports then_err
 * (its %s: the quoted list) under "@entity". (`conditional` with then_match.required would
 * report only "required field missing": then_err is not used for `required`.)
 */
export type KongEntityCheck =
  | { conditional_at_least_one_of: { if_field: string; if_match: { len_min: number }; then_at_least_one_of: string[]; then_err: string } }
  | { mutually_required: string[] };

export type KongFieldList = Array<Record<string, KongField>>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`invalid immudb-audit configuration: ${problems.join('; ')}`);
  }
}

/** A schema pattern as a RegExp; dotAll because Lua's `.` matches a newline too. */
function luaLike(pattern: string): RegExp {
  return new RegExp(pattern, 's');
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

function checkField(path: string, f: KongField, v: unknown, problems: string[]): unknown {
  if (v === undefined || v === null) {
    if (f.type === 'record') return checkRecord(path, f.fields, {}, problems, f.entity_checks);
    const d = 'default' in f ? f.default : undefined;
    if (d !== undefined && d !== null) return structuredClone(d);
    if (f.required) problems.push(`${path}: required field missing`);
    return null;
  }
  if (f.eq === null) return void problems.push(`${path}: ${f.err ?? 'value must be null'}`);
  // Kong: a failed validator reports the field's own `err` when it has one.
  const fail = (msg: string) => void problems.push(`${path}: ${f.err ?? msg}`);
  switch (f.type) {
    case 'string': {
      if (typeof v !== 'string') return void problems.push(`${path}: expected a string, got ${typeName(v)}`);
      if (f.len_min !== undefined && v.length < f.len_min) fail(`length must be at least ${f.len_min}`);
      if (f.len_max !== undefined && v.length > f.len_max) fail(`length must be at most ${f.len_max}`);
      if (f.one_of && !f.one_of.includes(v)) fail(`expected one of: ${f.one_of.join(', ')}`);
      for (const m of f.match_none ?? []) if (luaLike(m.pattern).test(v)) problems.push(`${path}: ${f.err ?? m.err}`);
      if (f.match && !luaLike(f.match).test(v)) fail(`invalid value: ${JSON.stringify(v)} (must match ${f.match})`);
      if (f.match_any && !f.match_any.patterns.some((p) => luaLike(p).test(v))) problems.push(`${path}: ${f.err ?? f.match_any.err}`);
      return v;
    }
    case 'integer':
    case 'number': {
      if (typeof v !== 'number' || !Number.isFinite(v)) return void problems.push(`${path}: expected ${f.type === 'integer' ? 'an integer' : 'a number'}, got ${typeName(v)}`);
      if (f.type === 'integer' && !Number.isInteger(v)) return void problems.push(`${path}: expected an integer`);
      if ('one_of' in f && f.one_of && !f.one_of.includes(v)) fail(`expected one of: ${f.one_of.join(', ')}`);
      if (f.between && (v < f.between[0] || v > f.between[1])) fail(`value should be between ${f.between[0]} and ${f.between[1]}`);
      if (f.gt !== undefined && !(v > f.gt)) fail(`value must be greater than ${f.gt}`);
      return v;
    }
    case 'boolean':
      if (typeof v !== 'boolean') return void problems.push(`${path}: expected a boolean, got ${typeName(v)}`);
      return v;
    case 'array': {
      if (!Array.isArray(v)) return void problems.push(`${path}: expected an array, got ${typeName(v)}`);
      if (f.len_max !== undefined && v.length > f.len_max) problems.push(`${path}: at most ${f.len_max} elements`);
      return v.map((e, i) => checkField(`${path}[${i + 1}]`, f.elements, e, problems));
    }
    case 'record':
      if (typeof v !== 'object' || Array.isArray(v)) return void problems.push(`${path}: expected a record, got ${typeName(v)}`);
      return checkRecord(path, f.fields, v as Record<string, unknown>, problems, f.entity_checks);
  }
}

/** Kong's is_nonempty: null, an empty string and an empty table are empty. */
function isNonEmpty(v: unknown): boolean {
  return !(v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).length === 0));
}

function runEntityChecks(path: string, checks: readonly KongEntityCheck[], out: Record<string, unknown>, problems: string[]) {
  const at = (name: string) => (path ? `${path}.${name}` : name);
  for (const check of checks) {
    if ('conditional_at_least_one_of' in check) {
      const c = check.conditional_at_least_one_of;
      const ifValue = out[c.if_field];
      if (Array.isArray(ifValue) && ifValue.length >= c.if_match.len_min && !c.then_at_least_one_of.some((n) => isNonEmpty(out[n]))) {
        problems.push(`${path || 'config'}: ${c.then_err.replace('%s', c.then_at_least_one_of.map((n) => `'${n}'`).join(', '))}`);
      }
    } else {
      const set = check.mutually_required.filter((n) => isNonEmpty(out[n]));
      if (set.length && set.length !== check.mutually_required.length) {
        problems.push(`${path || 'config'}: all or none of these fields must be set: ${check.mutually_required.map((n) => `'${at(n)}'`).join(', ')}`);
      }
    }
  }
}

/** The key under which Kong keeps the original references of a record's resolved fields. */
export const KONG_REFS = '$refs';

function checkRecord(path: string, fields: KongFieldList, v: Record<string, unknown>, problems: string[], checks?: readonly KongEntityCheck[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const known = new Set<string>();
  for (const entry of fields) {
    for (const [name, f] of Object.entries(entry)) {
      known.add(name);
      out[name] = checkField(path ? `${path}.${name}` : name, f, Object.prototype.hasOwnProperty.call(v, name) ? v[name] : undefined, problems);
    }
  }
  for (const name of Object.keys(v)) {
    // "$refs": Kong's record of the vault references it resolved in this record
    // (kong/db/schema/init.lua process_auto_fields); Kong's, not a field, so not validated.
    if (name === KONG_REFS) continue;
    if (!known.has(name)) problems.push(`${path ? `${path}.` : ''}${name}: unknown field`);
  }
  if (checks) runEntityChecks(path, checks, out, problems);
  return out;
}

/** Validates a config record against a field list; returns it with defaults, or throws ConfigError. */
export function validateRecord(fields: KongFieldList, value: unknown): Record<string, unknown> {
  const problems: string[] = [];
  if (value !== undefined && value !== null && (typeof value !== 'object' || Array.isArray(value))) {
    throw new ConfigError([`config: expected a record, got ${typeName(value)}`]);
  }
  const out = checkRecord('', fields, (value ?? {}) as Record<string, unknown>, problems);
  if (problems.length) throw new ConfigError(problems);
  return out;
}
