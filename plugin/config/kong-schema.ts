// A subset of Kong's schema language (kong/db/schema) for declaring the plugin's configuration,
// and a validator with Kong's semantics for that subset: defaults filled in, types checked,
// `required`, `between`, `one_of`, `match`, `len_min`/`len_max`, `gt`, nested records and
// arrays, and unknown fields rejected. Kong validates kong.yml with its own implementation; we
// use this one to normalise the config we receive and to check kong.yml files in tests.

export type KongField =
  | ({ type: 'string'; default?: string | null; one_of?: string[]; match?: string; len_min?: number; len_max?: number; encrypted?: boolean; referenceable?: boolean } & Common)
  | ({ type: 'integer'; default?: number | null; between?: [number, number]; gt?: number } & Common)
  | ({ type: 'number'; default?: number | null; between?: [number, number]; gt?: number } & Common)
  | ({ type: 'boolean'; default?: boolean | null } & Common)
  | ({ type: 'array'; default?: unknown[] | null; elements: KongField; len_max?: number } & Common)
  | ({ type: 'record'; fields: KongFieldList } & Common);

interface Common {
  required?: boolean;
  description?: string;
}

export type KongFieldList = Array<Record<string, KongField>>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`invalid immudb-audit configuration: ${problems.join('; ')}`);
  }
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

function checkField(path: string, f: KongField, v: unknown, problems: string[]): unknown {
  if (v === undefined || v === null) {
    if (f.type === 'record') return checkRecord(path, f.fields, {}, problems);
    const d = 'default' in f ? f.default : undefined;
    if (d !== undefined && d !== null) return structuredClone(d);
    if (f.required) problems.push(`${path}: required field missing`);
    return null;
  }
  switch (f.type) {
    case 'string': {
      if (typeof v !== 'string') return void problems.push(`${path}: expected a string, got ${typeName(v)}`);
      if (f.len_min !== undefined && v.length < f.len_min) problems.push(`${path}: length must be at least ${f.len_min}`);
      if (f.len_max !== undefined && v.length > f.len_max) problems.push(`${path}: length must be at most ${f.len_max}`);
      if (f.one_of && !f.one_of.includes(v)) problems.push(`${path}: expected one of: ${f.one_of.join(', ')}`);
      if (f.match && !new RegExp(f.match).test(v)) problems.push(`${path}: invalid value: ${JSON.stringify(v)} (must match ${f.match})`);
      return v;
    }
    case 'integer':
    case 'number': {
      if (typeof v !== 'number' || !Number.isFinite(v)) return void problems.push(`${path}: expected ${f.type === 'integer' ? 'an integer' : 'a number'}, got ${typeName(v)}`);
      if (f.type === 'integer' && !Number.isInteger(v)) return void problems.push(`${path}: expected an integer`);
      if (f.between && (v < f.between[0] || v > f.between[1])) problems.push(`${path}: value should be between ${f.between[0]} and ${f.between[1]}`);
      if (f.gt !== undefined && !(v > f.gt)) problems.push(`${path}: value must be greater than ${f.gt}`);
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
      return checkRecord(path, f.fields, v as Record<string, unknown>, problems);
  }
}

/** The key under which Kong keeps the original references of a record's resolved fields. */
export const KONG_REFS = '$refs';

function checkRecord(path: string, fields: KongFieldList, v: Record<string, unknown>, problems: string[]): Record<string, unknown> {
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
