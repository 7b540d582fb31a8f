// kong/kong.yml checked the way Kong 3.9 checks it, against the schema the plugin gives Kong
// (GetPluginInfo from the real plugin server), and the configuration reference in
// docs/operations.md checked against the same schema.
//
// Two validators must accept every immudb-audit config in kong.yml:
// - the plugin's own (plugin/config/kong-schema.ts validateRecord), which the plugin runs at
//   StartInstance;
// - Kong's rules where they differ from it (kong/db/schema/init.lua, metaschema.lua at 3.9.3):
//   `match` is a Lua pattern (value:match(pattern)), strings are non-empty unless len_min says
//   otherwise, an explicit null in a required field is an error, and a {vault://...} reference
//   is accepted (and resolved) only in a field marked referenceable. Kong also validates the
//   schema itself (MetaSubSchema) when it loads the plugin, defaults included.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { KongRpcClient, projectRoot, startPluginServer, type PluginInfo } from '../helpers/kong-driver.js';
import { validateRecord, type KongField, type KongFieldList } from '../../plugin/config/kong-schema.js';
import { configFields } from '../../plugin/config/schema.js';
import { renderConfigReference, replaceSection } from '../../scripts/gen-config-docs.js';

const PLUGIN = 'immudb-audit';

// ---------------------------------------------------------------------------------------------
// Lua 5.1 patterns (lstrlib.c: str_find_aux / match), the semantics of Kong's `match` validator.
// Works on bytes, with the C locale's character classes, like LuaJIT.
// ---------------------------------------------------------------------------------------------

class LuaPatternError extends Error {}

const L_ESC = 0x25; // %
const CAP_UNFINISHED = -1;
const CAP_POSITION = -2;

const isalpha = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
const isdigit = (c: number) => c >= 48 && c <= 57;
const islower = (c: number) => c >= 97 && c <= 122;
const isupper = (c: number) => c >= 65 && c <= 90;
const isspace = (c: number) => c === 32 || (c >= 9 && c <= 13);
const iscntrl = (c: number) => c < 32 || c === 127;
const ispunct = (c: number) => (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
const isxdigit = (c: number) => isdigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);

function matchClass(c: number, cl: number): boolean {
  let res: boolean;
  switch (String.fromCharCode(cl).toLowerCase()) {
    case 'a': res = isalpha(c); break;
    case 'c': res = iscntrl(c); break;
    case 'd': res = isdigit(c); break;
    case 'l': res = islower(c); break;
    case 'p': res = ispunct(c); break;
    case 's': res = isspace(c); break;
    case 'u': res = isupper(c); break;
    case 'w': res = isalpha(c) || isdigit(c); break;
    case 'x': res = isxdigit(c); break;
    case 'z': res = c === 0; break;
    default: return cl === c;
  }
  return islower(cl) ? res : !res;
}

class LuaMatcher {
  private level = 0;
  private readonly capture: Array<{ init: number; len: number }> = [];
  constructor(private readonly src: Buffer, private readonly pat: Buffer) {}

  private classEnd(p: number): number {
    const pat = this.pat;
    const c = pat[p++];
    if (c === L_ESC) {
      if (p >= pat.length) throw new LuaPatternError("malformed pattern (ends with '%')");
      return p + 1;
    }
    if (c === 0x5b) {
      if (pat[p] === 0x5e) p++;
      do {
        if (p >= pat.length) throw new LuaPatternError("malformed pattern (missing ']')");
        if (pat[p++] === L_ESC && p < pat.length) p++;
      } while (pat[p] !== 0x5d);
      return p + 1;
    }
    return p;
  }

  private bracketClass(c: number, p: number, ec: number): boolean {
    const pat = this.pat;
    let sig = true;
    if (pat[p + 1] === 0x5e) {
      sig = false;
      p++;
    }
    while (++p < ec) {
      if (pat[p] === L_ESC) {
        p++;
        if (matchClass(c, pat[p]!)) return sig;
      } else if (pat[p + 1] === 0x2d && p + 2 < ec) {
        p += 2;
        if (pat[p - 2]! <= c && c <= pat[p]!) return sig;
      } else if (pat[p] === c) return sig;
    }
    return !sig;
  }

  private singleMatch(c: number, p: number, ep: number): boolean {
    switch (this.pat[p]) {
      case 0x2e: return true; // .
      case L_ESC: return matchClass(c, this.pat[p + 1]!);
      case 0x5b: return this.bracketClass(c, p, ep - 1);
      default: return this.pat[p] === c;
    }
  }

  /** Index in src after the match, or -1. */
  match(s: number, p: number): number {
    const { src, pat } = this;
    for (;;) {
      if (p >= pat.length) return s;
      const pc = pat[p]!;
      if (pc === 0x28) { // (
        if (pat[p + 1] === 0x29) return this.startCapture(s, p + 2, CAP_POSITION);
        return this.startCapture(s, p + 1, CAP_UNFINISHED);
      }
      if (pc === 0x29) return this.endCapture(s, p + 1); // )
      if (pc === L_ESC && pat[p + 1] === 0x62) { // %b
        s = this.matchBalance(s, p + 2);
        if (s === -1) return -1;
        p += 4;
        continue;
      }
      if (pc === L_ESC && pat[p + 1] === 0x66) { // %f
        p += 2;
        if (pat[p] !== 0x5b) throw new LuaPatternError("missing '[' after '%f' in pattern");
        const ep = this.classEnd(p);
        const previous = s === 0 ? 0 : src[s - 1]!;
        const current = s < src.length ? src[s]! : 0;
        if (this.bracketClass(previous, p, ep - 1) || !this.bracketClass(current, p, ep - 1)) return -1;
        p = ep;
        continue;
      }
      if (pc === L_ESC && pat[p + 1] !== undefined && isdigit(pat[p + 1]!)) { // %1..%9
        s = this.matchCapture(s, pat[p + 1]!);
        if (s === -1) return -1;
        p += 2;
        continue;
      }
      if (pc === 0x24 && p + 1 === pat.length) return s === src.length ? s : -1; // $ at the end
      const ep = this.classEnd(p);
      const m = s < src.length && this.singleMatch(src[s]!, p, ep);
      switch (pat[ep]) {
        case 0x3f: { // ?
          if (m) {
            const res = this.match(s + 1, ep + 1);
            if (res !== -1) return res;
          }
          p = ep + 1;
          continue;
        }
        case 0x2a: return this.maxExpand(s, p, ep); // *
        case 0x2b: return m ? this.maxExpand(s + 1, p, ep) : -1; // +
        case 0x2d: return this.minExpand(s, p, ep); // -
        default:
          if (!m) return -1;
          s++;
          p = ep;
      }
    }
  }

  private maxExpand(s: number, p: number, ep: number): number {
    let i = 0;
    while (s + i < this.src.length && this.singleMatch(this.src[s + i]!, p, ep)) i++;
    for (; i >= 0; i--) {
      const res = this.match(s + i, ep + 1);
      if (res !== -1) return res;
    }
    return -1;
  }

  private minExpand(s: number, p: number, ep: number): number {
    for (;;) {
      const res = this.match(s, ep + 1);
      if (res !== -1) return res;
      if (s < this.src.length && this.singleMatch(this.src[s]!, p, ep)) s++;
      else return -1;
    }
  }

  private startCapture(s: number, p: number, what: number): number {
    if (this.level >= 32) throw new LuaPatternError('too many captures');
    this.capture[this.level] = { init: s, len: what };
    this.level++;
    const res = this.match(s, p);
    if (res === -1) this.level--;
    return res;
  }

  private endCapture(s: number, p: number): number {
    let l = -1;
    for (let i = this.level - 1; i >= 0; i--) {
      if (this.capture[i]!.len === CAP_UNFINISHED) {
        l = i;
        break;
      }
    }
    if (l < 0) throw new LuaPatternError('invalid pattern capture');
    this.capture[l]!.len = s - this.capture[l]!.init;
    const res = this.match(s, p);
    if (res === -1) this.capture[l]!.len = CAP_UNFINISHED;
    return res;
  }

  private matchBalance(s: number, p: number): number {
    const { src, pat } = this;
    if (p + 1 >= pat.length) throw new LuaPatternError('unbalanced pattern');
    if (s >= src.length || src[s] !== pat[p]) return -1;
    const b = pat[p]!;
    const e = pat[p + 1]!;
    let cont = 1;
    while (++s < src.length) {
      if (src[s] === e) {
        if (--cont === 0) return s + 1;
      } else if (src[s] === b) cont++;
    }
    return -1;
  }

  private matchCapture(s: number, digit: number): number {
    const l = digit - 0x31;
    if (l < 0 || l >= this.level || this.capture[l]!.len === CAP_UNFINISHED) throw new LuaPatternError('invalid capture index');
    const { init, len } = this.capture[l]!;
    if (this.src.length - s >= len && this.src.subarray(init, init + len).equals(this.src.subarray(s, s + len))) return s + len;
    return -1;
  }

  /** Lua 5.1 str_find_aux without `init`: whether `string.match(src, pat)` finds a match. */
  find(): boolean {
    let p = 0;
    const anchor = this.pat[0] === 0x5e;
    if (anchor) p = 1;
    let s1 = 0;
    do {
      this.level = 0;
      if (this.match(s1, p) !== -1) {
        for (let i = 0; i < this.level; i++) if (this.capture[i]!.len === CAP_UNFINISHED) throw new LuaPatternError('unfinished capture');
        return true;
      }
    } while (s1++ < this.src.length && !anchor);
    return false;
  }
}

/** `value:match(pattern) ~= nil` in LuaJIT / Lua 5.1; throws LuaPatternError like Lua errors. */
export function luaMatches(value: string, pattern: string): boolean {
  return new LuaMatcher(Buffer.from(value, 'utf8'), Buffer.from(pattern, 'utf8')).find();
}

// ---------------------------------------------------------------------------------------------
// Kong's rules
// ---------------------------------------------------------------------------------------------

/** kong/pdk/vault.lua is_reference: "{vault://...}". */
const isReference = (v: unknown): v is string => typeof v === 'string' && v.startsWith('{vault://') && v.endsWith('}');
/** References the plugin resolves itself (plugin/capture/secret-refs.ts). */
const isPluginReference = (v: unknown): v is string => typeof v === 'string' && /^(env:[A-Za-z_]|file:\/)/.test(v);

type AnyField = KongField & Record<string, unknown>;

const typeOf = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/**
 * Kong's Schema:validate_field for the subset the plugin uses, applied to one value the way Kong
 * validates a declarative config (missing fields take their defaults; explicit nulls do not).
 * Pushes problems; records the paths of vault references it accepted.
 */
function kongValidate(path: string, f: AnyField, v: unknown, problems: string[], refs: string[]): void {
  if (v === undefined) {
    if (f.type === 'record') return kongValidateRecord(path, f.fields, {}, problems, refs, f.entity_checks);
    if (f.required && (f.default === undefined || f.default === null)) problems.push(`${path}: required field missing`);
    return;
  }
  if (v === null) {
    if (f.required) problems.push(`${path}: required field missing (explicit null)`);
    return;
  }
  // Kong: `eq = null` refuses any value, with the field's `err`.
  if ('eq' in f && f.eq === null) return void problems.push(`${path}: ${(f.err as string | undefined) ?? 'value must be null'}`);
  switch (f.type) {
    case 'string': {
      if (typeof v !== 'string') return void problems.push(`${path}: expected a string, got ${typeOf(v)}`);
      if (isReference(v)) {
        if (f.referenceable) return void refs.push(path);
        problems.push(`${path}: ${v} is not a vault reference for Kong here (the field is not referenceable): it would be taken literally`);
      }
      // Validators in Kong's order (Schema.validators_order): match_none before match, match_any after.
      for (const m of (f.match_none as Array<{ pattern: string; err: string }> | undefined) ?? []) {
        if (luaMatches(v, m.pattern)) problems.push(`${path}: ${(f.err as string | undefined) ?? m.err}`);
      }
      const any = f.match_any as { patterns: string[]; err: string } | undefined;
      if (any && !any.patterns.some((p) => luaMatches(v, p))) problems.push(`${path}: ${(f.err as string | undefined) ?? any.err}`);
      const lenMin = (f.len_min as number | undefined) ?? 1; // Kong: empty strings are not accepted by default
      if (f.one_of && !(f.one_of as unknown[]).includes(v)) problems.push(`${path}: expected one of: ${(f.one_of as unknown[]).join(', ')}`);
      const len = Buffer.byteLength(v);
      if (len < lenMin) problems.push(`${path}: length must be at least ${lenMin}`);
      if (f.len_max !== undefined && len > (f.len_max as number)) problems.push(`${path}: length must be at most ${f.len_max}`);
      if (typeof f.match === 'string') {
        try {
          if (!luaMatches(v, f.match)) problems.push(`${path}: invalid value: ${v} (Kong's match is a Lua pattern: ${JSON.stringify(f.match)} does not match it)`);
        } catch (e) {
          problems.push(`${path}: the schema's match ${JSON.stringify(f.match)} is not a valid Lua pattern (${(e as Error).message})`);
        }
      }
      return;
    }
    case 'integer':
    case 'number': {
      if (typeof v !== 'number' || !Number.isFinite(v)) return void problems.push(`${path}: expected ${f.type === 'integer' ? 'an integer' : 'a number'}, got ${typeOf(v)}`);
      if (f.type === 'integer' && !Number.isInteger(v)) return void problems.push(`${path}: expected an integer`);
      // Kong: a failing validator reports the field's `err` when it has one.
      const err = f.err as string | undefined;
      if (f.one_of && !(f.one_of as unknown[]).includes(v)) problems.push(`${path}: ${err ?? `expected one of: ${(f.one_of as unknown[]).join(', ')}`}`);
      const between = f.between as [number, number] | undefined;
      if (between && (v < between[0] || v > between[1])) problems.push(`${path}: ${err ?? `value should be between ${between[0]} and ${between[1]}`}`);
      if (typeof f.gt === 'number' && !(v > f.gt)) problems.push(`${path}: ${err ?? `value must be greater than ${f.gt}`}`);
      return;
    }
    case 'boolean':
      if (typeof v !== 'boolean') problems.push(`${path}: expected a boolean, got ${typeOf(v)}`);
      return;
    case 'array': {
      if (!Array.isArray(v)) return void problems.push(`${path}: expected an array, got ${typeOf(v)}`);
      if (f.len_min !== undefined && v.length < (f.len_min as number)) problems.push(`${path}: at least ${f.len_min} elements`);
      if (f.len_max !== undefined && v.length > (f.len_max as number)) problems.push(`${path}: at most ${f.len_max} elements`);
      v.forEach((e, i) => {
        if (e === null || e === undefined) problems.push(`${path}[${i + 1}]: required field missing`);
        else kongValidate(`${path}[${i + 1}]`, f.elements as AnyField, e, problems, refs);
      });
      return;
    }
    case 'record':
      if (typeof v !== 'object' || Array.isArray(v)) return void problems.push(`${path}: expected a record, got ${typeOf(v)}`);
      return kongValidateRecord(path, f.fields, v as Record<string, unknown>, problems, refs, f.entity_checks);
  }
}

/** kong/db/schema/init.lua is_nonempty. */
const isNonEmpty = (v: unknown) => !(v === undefined || v === null || v === '' || (typeof v === 'object' && Object.keys(v as object).length === 0));

/**
 * Kong's entity checks of a record (init.lua Schema.entity_checkers, run_entity_check), the ones
 * the schema uses: errors go under "@entity", with then_err when the check has one. A vault
 * reference in a referenceable field skips the check.
 */
function kongEntityChecks(path: string, fields: KongFieldList, checks: readonly unknown[], v: Record<string, unknown>, problems: string[]): void {
  const withDefault = (name: string) => {
    if (v[name] !== undefined) return v[name];
    const f = fields.find((e) => name in e)?.[name] as AnyField | undefined;
    return f?.default ?? null;
  };
  const at = `${path || 'config'}.@entity`;
  for (const check of checks as Array<Record<string, any>>) {
    const [name, arg] = Object.entries(check)[0]!;
    if (name === 'conditional_at_least_one_of') {
      const ifValue = withDefault(arg.if_field);
      if (ifValue === null) continue;
      const len = Array.isArray(ifValue) || typeof ifValue === 'string' ? ifValue.length : 0;
      if (arg.if_match.len_min !== undefined && len < arg.if_match.len_min) continue;
      const names = arg.then_at_least_one_of as string[];
      if (names.some((n) => isReference(v[n]))) continue;
      const list = names.map((n) => `'${n}'`).join(', ');
      if (!names.some((n) => isNonEmpty(withDefault(n)))) problems.push(`${at}: ${arg.then_err ? String(arg.then_err).replace('%s', list) : `at least one of these fields must be non-empty: ${list}`}`);
    } else if (name === 'mutually_required') {
      const names = arg as string[];
      if (names.some((n) => isReference(v[n]))) continue;
      const set = names.filter((n) => isNonEmpty(withDefault(n)));
      if (set.length && set.length !== names.length) problems.push(`${at}: all or none of these fields must be set: ${names.map((n) => `'${n}'`).join(', ')}`);
    } else {
      problems.push(`${at}: entity check ${name} is not modelled by this test`);
    }
  }
}

function kongValidateRecord(path: string, fields: KongFieldList, v: Record<string, unknown>, problems: string[], refs: string[], checks?: readonly unknown[]): void {
  if (checks) kongEntityChecks(path, fields, checks, v, problems);
  const known = new Set<string>();
  for (const entry of fields) {
    for (const [name, f] of Object.entries(entry)) {
      known.add(name);
      kongValidate(path ? `${path}.${name}` : name, f as AnyField, Object.prototype.hasOwnProperty.call(v, name) ? v[name] : undefined, problems, refs);
    }
  }
  for (const name of Object.keys(v)) if (!known.has(name)) problems.push(`${path ? `${path}.` : ''}${name}: unknown field`);
}

/** Kong's view of a plugin config: problems, and the vault references it would resolve. */
function kongCheckConfig(fields: KongFieldList, config: unknown): { problems: string[]; refs: string[] } {
  const problems: string[] = [];
  const refs: string[] = [];
  if (typeof config !== 'object' || config === null || Array.isArray(config)) return { problems: [`config: expected a record, got ${typeOf(config)}`], refs };
  kongValidateRecord('', fields, config as Record<string, unknown>, problems, refs);
  return { problems, refs };
}

/**
 * The plugin's own validator on the same config. Kong hands the plugin resolved values, so a
 * vault reference in a referenceable field stands for a valid value here: the field is
 * validated as a plain string.
 */
function pluginCheckConfig(fields: KongFieldList, config: unknown): { problems: string[]; value?: Record<string, unknown> } {
  const f2 = structuredClone(fields);
  const c2 = structuredClone(config) as Record<string, unknown>;
  const relax = (fl: KongFieldList, v: Record<string, unknown> | undefined) => {
    for (const entry of fl) {
      for (const [name, f] of Object.entries(entry)) {
        const val = v?.[name];
        if (f.type === 'record') relax(f.fields, val && typeof val === 'object' ? (val as Record<string, unknown>) : undefined);
        else if (f.type === 'string' && f.referenceable && isReference(val)) entry[name] = { type: 'string', description: f.description };
      }
    }
  };
  relax(f2, c2);
  try {
    return { problems: [], value: validateRecord(f2, c2) };
  } catch (e) {
    return { problems: (e as { problems?: string[] }).problems ?? [(e as Error).message] };
  }
}

// Kong 3.9.3 kong/db/schema/metaschema.lua: the field attributes a plugin schema may use.
const VALIDATOR_ATTRS = ['between', 'eq', 'ne', 'gt', 'len_eq', 'len_min', 'len_max', 'match', 'not_match', 'match_all', 'match_none', 'match_any', 'starts_with', 'one_of', 'not_one_of', 'contains', 'is_regex', 'timestamp', 'uuid', 'custom_validator', 'mutually_exclusive_subsets'];
const FIELD_ATTRS = new Set([
  'type', 'required', 'reference', 'description', 'examples', 'auto', 'unique', 'unique_across_ws', 'on_delete', 'default', 'abstract',
  'generate_admin_api', 'immutable', 'err', 'encrypted', 'referenceable', 'json_schema', 'transient', 'deprecation',
  ...VALIDATOR_ATTRS, 'elements', 'keys', 'values', 'fields', 'entity_checks', 'shorthand_fields',
]);
const VALID_TYPES = new Set(['array', 'set', 'string', 'number', 'boolean', 'integer', 'foreign', 'map', 'record', 'function', 'json']);
const REQUIRED_ATTRS: Record<string, string[]> = { array: ['elements'], set: ['elements'], map: ['keys', 'values'], record: ['fields'], json: ['json_schema'] };
const ATTRIBUTE_TYPES: Record<string, string[]> = {
  between: ['integer', 'number'], len_eq: ['array', 'set', 'string', 'map'], match: ['string'], one_of: ['string', 'number', 'integer'],
  contains: ['array', 'set'], is_regex: ['string'], timestamp: ['number', 'integer'], uuid: ['string'],
  unique: ['string', 'number', 'integer', 'foreign'], unique_across_ws: ['string', 'number', 'integer', 'foreign'],
};
const BOOLEAN_ATTRS = ['required', 'auto', 'unique', 'unique_across_ws', 'abstract', 'generate_admin_api', 'immutable', 'encrypted', 'referenceable', 'transient', 'is_regex', 'timestamp', 'uuid'];
const INTEGER_ATTRS = ['len_eq', 'len_min', 'len_max'];
const STRING_ATTRS = ['reference', 'err', 'match', 'not_match', 'starts_with', 'on_delete'];

/** MetaSubSchema validation of a plugin's field list (what Kong does when it loads the plugin). */
function metaCheck(fields: unknown, path: string, problems: string[]): void {
  if (!Array.isArray(fields)) return void problems.push(`${path || 'fields'}: must be an array`);
  fields.forEach((item, i) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return void problems.push(`${path}[${i + 1}]: each entry in fields must be a sub-table`);
    const keys = Object.keys(item);
    if (keys.length !== 1) return void problems.push(`${path}[${i + 1}]: must have exactly one field name (has ${keys.join(', ') || 'none'})`);
    const name = keys[0]!;
    metaCheckField(path ? `${path}.${name}` : name, (item as Record<string, unknown>)[name], problems);
  });
}

function metaCheckField(path: string, field: unknown, problems: string[]): void {
  if (typeof field !== 'object' || field === null || Array.isArray(field)) return void problems.push(`${path}: must be a table`);
  const f = field as Record<string, unknown>;
  const type = f.type;
  if (typeof type !== 'string') return void problems.push(`${path}: missing type declaration`);
  if (!VALID_TYPES.has(type)) problems.push(`${path}: type ${type} is not a Kong type`);
  for (const attr of Object.keys(f)) {
    if (!FIELD_ATTRS.has(attr)) problems.push(`${path}: unknown field attribute ${attr} (Kong's metaschema rejects it)`);
    if (ATTRIBUTE_TYPES[attr] && !ATTRIBUTE_TYPES[attr]!.includes(type)) problems.push(`${path}: field of type '${type}' cannot have attribute '${attr}'`);
  }
  for (const attr of REQUIRED_ATTRS[type] ?? []) if (f[attr] === undefined) problems.push(`${path}: field of type '${type}' must declare '${attr}'`);
  for (const attr of BOOLEAN_ATTRS) if (f[attr] !== undefined && typeof f[attr] !== 'boolean') problems.push(`${path}.${attr}: expected a boolean`);
  for (const attr of INTEGER_ATTRS) if (f[attr] !== undefined && !Number.isInteger(f[attr])) problems.push(`${path}.${attr}: expected an integer`);
  for (const attr of STRING_ATTRS) if (f[attr] !== undefined && typeof f[attr] !== 'string') problems.push(`${path}.${attr}: expected a string`);
  if (f.gt !== undefined && typeof f.gt !== 'number') problems.push(`${path}.gt: expected a number`);
  if (f.between !== undefined && !(Array.isArray(f.between) && f.between.length === 2 && f.between.every((n) => typeof n === 'number'))) problems.push(`${path}.between: expected two numbers`);
  if (f.one_of !== undefined && !Array.isArray(f.one_of)) problems.push(`${path}.one_of: expected an array`);
  if (f.description !== undefined) {
    if (typeof f.description !== 'string') problems.push(`${path}.description: expected a string`);
    else {
      const n = Buffer.byteLength(f.description);
      if (n < 10 || n > 500) problems.push(`${path}.description: length must be between 10 and 500 (is ${n})`);
    }
  }
  if (typeof f.match === 'string') {
    try {
      luaMatches('', f.match);
    } catch (e) {
      problems.push(`${path}.match: ${JSON.stringify(f.match)} is not a valid Lua pattern (${(e as Error).message})`);
    }
  }
  for (const nested of ['elements', 'keys', 'values'] as const) if (f[nested] !== undefined) metaCheckField(`${path}.${nested}`, f[nested], problems);
  if (type === 'record' && f.fields !== undefined) metaCheck(f.fields, path, problems);
  // `default = { type = "self" }`: the default must pass the field's own validation.
  if (f.default !== undefined && f.default !== null) {
    const p: string[] = [];
    kongValidate(`${path}.default`, { ...(f as AnyField), referenceable: false } as AnyField, f.default, p, []);
    problems.push(...p);
  }
}

/** Leaf paths of a field list (records expanded). */
function leafPaths(fields: KongFieldList, prefix = ''): string[] {
  return fields.flatMap((entry) =>
    Object.entries(entry).flatMap(([name, f]) => (f.type === 'record' ? leafPaths(f.fields, `${prefix}${name}.`) : [`${prefix}${name}`])),
  );
}

function fieldAt(fields: KongFieldList, path: string): AnyField | undefined {
  const [head, ...rest] = path.split('.');
  for (const entry of fields) {
    const f = entry[head!];
    if (!f) continue;
    if (!rest.length) return f as AnyField;
    return f.type === 'record' ? fieldAt(f.fields, rest.join('.')) : undefined;
  }
  return undefined;
}

function valueAt(obj: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' && !Array.isArray(o) ? (o as Record<string, unknown>)[k] : undefined), obj);
}

// ---------------------------------------------------------------------------------------------
// kong.yml
// ---------------------------------------------------------------------------------------------

interface PluginEntry {
  name: string;
  config?: Record<string, unknown>;
  enabled?: boolean;
  [k: string]: unknown;
}
interface RouteEntry {
  name: string;
  paths?: string[];
  plugins?: PluginEntry[];
  [k: string]: unknown;
}
interface KongYml {
  _format_version: string;
  services?: Array<{ name: string; url?: string; routes?: RouteEntry[]; plugins?: PluginEntry[]; [k: string]: unknown }>;
  routes?: RouteEntry[];
  consumers?: Array<{ username?: string; custom_id?: string; keyauth_credentials?: Array<{ key?: string }>; plugins?: PluginEntry[]; [k: string]: unknown }>;
  plugins?: PluginEntry[];
  [k: string]: unknown;
}

const kongYmlText = readFileSync(join(projectRoot(), 'kong', 'kong.yml'), 'utf8');

function parseKongYml(text: string): KongYml {
  const doc = YAML.parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length) throw new Error(`kong/kong.yml is not valid YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
  return doc.toJS() as KongYml;
}

/** Every plugin entry with where it is attached. */
function pluginEntries(k: KongYml): Array<{ where: string; route?: RouteEntry; plugin: PluginEntry }> {
  const out: Array<{ where: string; route?: RouteEntry; plugin: PluginEntry }> = [];
  for (const p of k.plugins ?? []) out.push({ where: 'global', plugin: p });
  for (const s of k.services ?? []) {
    for (const p of s.plugins ?? []) out.push({ where: `service ${s.name}`, plugin: p });
    for (const r of s.routes ?? []) for (const p of r.plugins ?? []) out.push({ where: `route ${r.name}`, route: r, plugin: p });
  }
  for (const r of k.routes ?? []) for (const p of r.plugins ?? []) out.push({ where: `route ${r.name}`, route: r, plugin: p });
  for (const c of k.consumers ?? []) for (const p of c.plugins ?? []) out.push({ where: `consumer ${c.username ?? c.custom_id}`, plugin: p });
  return out;
}

// Kong 3.9.3 kong/constants.lua: the bundled plugins.
const BUNDLED_PLUGINS = new Set([
  'jwt', 'acl', 'correlation-id', 'cors', 'oauth2', 'tcp-log', 'udp-log', 'file-log', 'http-log', 'key-auth', 'hmac-auth', 'basic-auth',
  'ip-restriction', 'request-transformer', 'response-transformer', 'request-size-limiting', 'rate-limiting', 'response-ratelimiting',
  'syslog', 'loggly', 'datadog', 'ldap-auth', 'statsd', 'bot-detection', 'aws-lambda', 'request-termination', 'prometheus', 'proxy-cache',
  'session', 'acme', 'grpc-gateway', 'grpc-web', 'pre-function', 'post-function', 'azure-functions', 'zipkin', 'opentelemetry', 'ai-proxy',
  'ai-prompt-decorator', 'ai-prompt-template', 'ai-prompt-guard', 'ai-request-transformer', 'ai-response-transformer', 'standard-webhooks',
  'redirect',
]);
const DECLARATIVE_TOP_LEVEL = new Set([
  '_format_version', '_transform', '_comment', '_workspace', 'services', 'routes', 'consumers', 'plugins', 'upstreams', 'targets',
  'certificates', 'ca_certificates', 'snis', 'vaults', 'consumer_groups', 'keys', 'key_sets', 'filter_chains', 'parameters',
]);

/**
 * Fields of the full example that kong.yml may leave out, and why. A field the schema gains is
 * missing from kong.yml until it is added there or listed here with a reason.
 */
const OMITTED: Record<string, string> = {
  spool_dir: 'comes from IMMUDB_AUDIT_DATA_DIR, which the image sets to the volume',
  server_public_key: 'the demo immudb has no --signingKey; docs/operations.md, production checklist',
  'tls.ca_cert': 'TLS is off inside the compose network; docs/operations.md, production checklist',
  'tls.client_cert': 'TLS is off inside the compose network',
  'tls.client_key': 'TLS is off inside the compose network',
  'tls.server_name': 'TLS is off inside the compose network',
  'queue.max_retry_time': 'any value is refused: an audit entry is never given up (docs/decisions.md #6)',
};

// ---------------------------------------------------------------------------------------------

let info: PluginInfo;
let schemaFields: KongFieldList;
let kongYml: KongYml;

test.before(async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kia-kongyml-'));
  const server = await startPluginServer({ pluginsDir: join(projectRoot(), 'dist', 'kong-plugins'), env: { IMMUDB_AUDIT_DATA_DIR: dataDir, OTEL_SDK_DISABLED: 'true' } });
  const rpc = new KongRpcClient(server.socketPath);
  try {
    info = await rpc.getPluginInfo(PLUGIN);
  } finally {
    rpc.close();
    await server.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  }
  schemaFields = info.Schema.fields[0]!.config.fields as KongFieldList;
  kongYml = parseKongYml(kongYmlText);
});

test('Lua patterns: the matcher behaves like Lua 5.1 string.match', (t) => {
  const yes: Array<[string, string]> = [
    ['audit', '^[a-z0-9][a-z0-9_-]*$'], ['abc', 'b'], ['a-b.c_d', '^[%w_.-]+$'], ['x{0,1}', '^x{0,1}$'], ['[x]', '^%[x%]$'],
    ['hello world', '^(%w+) (%w+)$'], ['THE (quick) fox', '%((%a+)%)'], ['f(a(b)c)', '^f%b()$'], ['abab', '^(ab)%1$'],
    ['  ', '^%s*$'], ['', '^$'], ['x', '[%a]'], ['a]', '^[]a]+$'], ['-', '^[a-]$'], ['^', '^[a^]$'], ['THE', '%f[%a]%a+'],
    ['aaa', '^a-$'], ['user-agent', "^[%w!#$%%&'*+.^_`|~-]+$"], ['203.0.113.7', '^%d+%.%d+%.%d+%.%d+$'], ['ab', '^ab?$'], ['a', '^ab?$'],
  ];
  for (const [s, p] of yes) t.true(luaMatches(s, p), `${JSON.stringify(s)} should match ${JSON.stringify(p)}`);
  const no: Array<[string, string]> = [
    ['audit', '^[a-z0-9][a-z0-9_-]{0,127}$'], ['user-agent', "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$"], ['ab', '^a$'], ['Abc', '^%l+$'],
    ['x y', '^%S+$'], ['a.b', '^[^.]+$'], ['b', '^[a-]$'], ['ac', '^ab?$'], ['f(a(b)c', '^f%b()$'], ['abac', '^(ab)%1$'],
  ];
  for (const [s, p] of no) t.false(luaMatches(s, p), `${JSON.stringify(s)} should not match ${JSON.stringify(p)}`);
  for (const bad of ['[a', 'a%', '%b(', '(a', '%1', '%f']) t.throws(() => luaMatches('a', bad), { instanceOf: LuaPatternError }, bad);
});

test('GetPluginInfo: the schema Kong receives is the plugin schema and passes Kong\'s metaschema', (t) => {
  t.is(info.Name, PLUGIN);
  t.is(info.Schema.name, PLUGIN);
  t.is(info.Schema.fields.length, 1, 'the plugin schema has exactly one field, config');
  t.is(info.Schema.fields[0]!.config.type, 'record');
  t.deepEqual(schemaFields, JSON.parse(JSON.stringify(configFields)), 'GetPluginInfo sends plugin/config/schema.ts');
  const problems: string[] = [];
  metaCheck(schemaFields, '', problems);
  t.deepEqual(problems, [], `Kong would refuse to load the plugin's schema:\n  ${problems.join('\n  ')}`);
});

test('every match pattern of the schema means the same to Kong (a Lua pattern) and to the plugin (a RegExp)', (t) => {
  // Kong applies `match` with string.match; plugin/config/kong-schema.ts with RegExp. Where they
  // disagree, a value Kong accepts can fail at StartInstance, or the reverse. Compared on random
  // strings (seeded) and on the schema's defaults.
  const patterns: Array<{ path: string; match: string; samples: string[] }> = [];
  const collect = (fl: KongFieldList, prefix: string) => {
    for (const entry of fl) {
      for (const [name, f] of Object.entries(entry)) {
        const any = f as AnyField;
        const el = f.type === 'array' ? (f.elements as AnyField) : any;
        if (typeof el.match === 'string') patterns.push({ path: `${prefix}${name}`, match: el.match, samples: typeof any.default === 'string' ? [any.default] : Array.isArray(any.default) ? (any.default as string[]) : [] });
        for (const p of (el.match_any as { patterns: string[] } | undefined)?.patterns ?? []) patterns.push({ path: `${prefix}${name} (match_any)`, match: p, samples: ['env:AUDIT_KEY', 'file:/run/key', 'x'.repeat(32), `${'y'.repeat(31)}\n`] });
        for (const m of (el.match_none as Array<{ pattern: string }> | undefined) ?? []) patterns.push({ path: `${prefix}${name} (match_none)`, match: m.pattern, samples: ['/a?b', '/a#b', '/a b', '/a\tb', '/a\nb', '/ok'] });
        if (f.type === 'record') collect(f.fields, `${prefix}${name}.`);
      }
    }
  };
  collect(schemaFields, '');
  let seed = 20261124;
  const rand = () => ((seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
  const alphabet = "abcxyzABCXYZ0189._-/:%{},\\ #&=?!'*+^`|~$@\n";
  for (const { path, match, samples } of patterns) {
    let re: RegExp;
    try {
      re = new RegExp(match, 's'); // as plugin/config/kong-schema.ts compiles it
    } catch (e) {
      t.fail(`${path}: ${match} is not a RegExp: ${(e as Error).message}`);
      continue;
    }
    const strings = [...samples];
    for (let i = 0; i < 20_000; i++) {
      let s = i % 7 === 0 ? '/' : '';
      const len = 1 + Math.floor(rand() * 6);
      for (let j = 0; j < len; j++) s += alphabet[Math.floor(rand() * alphabet.length)];
      strings.push(s);
    }
    const differs = strings.find((s) => {
      try {
        return luaMatches(s, match) !== re.test(s);
      } catch {
        return true;
      }
    });
    t.is(differs, undefined, `${path}: ${JSON.stringify(match)} means something else in Lua than in a RegExp, e.g. for ${JSON.stringify(differs)} (Kong: ${differs === undefined ? '' : (() => { try { return luaMatches(differs, match); } catch (e) { return (e as Error).message; } })()}, plugin: ${differs === undefined ? '' : re.test(differs)}); use the common subset: literal characters, [sets] without % or \\, + and *, lengths in len_min/len_max`);
  }
});

test('kong.yml: format 3.0, DB-less entities, routes with and without key-auth', (t) => {
  t.is(kongYml._format_version, '3.0');
  for (const k of Object.keys(kongYml)) t.true(DECLARATIVE_TOP_LEVEL.has(k), `unknown top-level key ${k}`);
  const services = kongYml.services ?? [];
  t.true(services.length >= 1, 'a service');
  const names = { services: new Set<string>(), routes: new Set<string>() };
  for (const s of services) {
    t.regex(s.name, /^[A-Za-z0-9._~-]+$/, 'service name');
    t.false(names.services.has(s.name), `duplicate service ${s.name}`);
    names.services.add(s.name);
    t.regex(String(s.url), /^https?:\/\/[^/\s]+/, `service ${s.name} url`);
    for (const r of s.routes ?? []) {
      t.false(names.routes.has(r.name), `duplicate route ${r.name}`);
      names.routes.add(r.name);
      t.true(Array.isArray(r.paths) && r.paths.length > 0 && r.paths.every((p) => p.startsWith('/')), `route ${r.name} paths`);
    }
  }
  for (const { where, plugin } of pluginEntries(kongYml)) {
    t.true(plugin.name === PLUGIN || BUNDLED_PLUGINS.has(plugin.name), `${where}: plugin ${plugin.name} is neither bundled with Kong 3.9 nor ours`);
  }
  const routes = pluginEntries(kongYml).filter((e) => e.plugin.name === PLUGIN && e.route);
  const withAuth = routes.filter((e) => e.route!.plugins!.some((p) => p.name === 'key-auth'));
  const anonymous = routes.filter((e) => !e.route!.plugins!.some((p) => /-auth$|^jwt$|^oauth2$/.test(p.name)));
  t.true(withAuth.length >= 1, 'a route with key-auth and immudb-audit');
  t.true(anonymous.length >= 1, 'an anonymous route with immudb-audit');
  const consumers = kongYml.consumers ?? [];
  const keys = consumers.flatMap((c) => c.keyauth_credentials ?? []);
  t.true(keys.length >= 1, 'a key-auth consumer');
  for (const c of consumers) t.true(Boolean(c.username || c.custom_id), 'consumers have a username or custom_id');
  for (const k of keys) t.true(typeof k.key === 'string' && k.key.length > 0 && !k.key.startsWith('{vault://'), 'key-auth keys are not referenceable in Kong 3.9: a reference would be the key itself');
});

test('kong.yml: every immudb-audit config is valid for Kong and for the plugin', (t) => {
  const entries = pluginEntries(kongYml).filter((e) => e.plugin.name === PLUGIN);
  t.true(entries.length >= 2);
  for (const { where, plugin } of entries) {
    const kong = kongCheckConfig(schemaFields, plugin.config ?? {});
    t.deepEqual(kong.problems, [], `${where}: Kong would reject the config:\n  ${kong.problems.join('\n  ')}`);
    const own = pluginCheckConfig(schemaFields, plugin.config ?? {});
    t.deepEqual(own.problems, [], `${where}: the plugin rejects the config:\n  ${own.problems.join('\n  ')}`);
    if (own.value) {
      // defaults are filled in for what kong.yml leaves out
      for (const path of leafPaths(schemaFields)) {
        const f = fieldAt(schemaFields, path)!;
        if (valueAt(plugin.config, path) === undefined && f.default !== undefined && f.default !== null) t.deepEqual(valueAt(own.value, path), f.default, `${where}: default of ${path}`);
      }
    }
  }
});

test('kong.yml: vault references only where Kong resolves them; no secret in clear', (t) => {
  const entries = pluginEntries(kongYml).filter((e) => e.plugin.name === PLUGIN);
  const allowed = new Set<unknown>();
  for (const { where, plugin } of entries) {
    for (const path of leafPaths(schemaFields)) {
      const f = fieldAt(schemaFields, path)!;
      const v = valueAt(plugin.config, path);
      if (isReference(v)) {
        t.true(Boolean(f.referenceable), `${where}: ${path} holds a vault reference but is not referenceable`);
        t.regex(v, /^\{vault:\/\/env\/[a-z0-9-]+\}$/, `${where}: ${path}: only the env vault is part of open-source Kong`);
        allowed.add(v);
      }
      if (f.encrypted && v !== undefined && v !== null) {
        t.true(isReference(v) || isPluginReference(v), `${where}: ${path} is a secret and must be a reference, not the value`);
      }
    }
  }
  // and nowhere else in the file
  const walk = (v: unknown, path: string) => {
    if (typeof v === 'string' && v.includes('{vault://')) t.true(allowed.has(v), `${path}: ${v} outside a referenceable immudb-audit field`);
    else if (Array.isArray(v)) v.forEach((e, i) => walk(e, `${path}[${i}]`));
    else if (v && typeof v === 'object') for (const [k, e] of Object.entries(v)) walk(e, path ? `${path}.${k}` : k);
  };
  walk(kongYml, '');
  // every secret of the schema is shown (as a reference) in the full example
  const full = entries.find((e) => e.route?.name === 'orders');
  t.truthy(full, 'the orders route carries the full example');
  for (const path of leafPaths(schemaFields).filter((p) => fieldAt(schemaFields, p)!.encrypted && !OMITTED[p])) {
    t.true(isReference(valueAt(full!.plugin.config, path)), `the full example shows ${path} as a vault reference`);
  }
});

test('kong.yml: the full example (route orders) shows every field of the schema', (t) => {
  const full = pluginEntries(kongYml).find((e) => e.plugin.name === PLUGIN && e.route?.name === 'orders');
  t.truthy(full);
  const missing = leafPaths(schemaFields).filter((p) => valueAt(full!.plugin.config, p) === undefined && !OMITTED[p]);
  t.deepEqual(missing, [], `kong/kong.yml (route orders) does not show: ${missing.join(', ')}; add them, or list them in OMITTED in this test with the reason`);
  for (const p of Object.keys(OMITTED)) t.truthy(fieldAt(schemaFields, p), `OMITTED lists ${p}, which the schema no longer has`);
});

test('kong.yml: privacy.key_names covers the key names of the route\'s key-auth', (t) => {
  for (const { where, route, plugin } of pluginEntries(kongYml).filter((e) => e.plugin.name === PLUGIN && e.route)) {
    const auth = route!.plugins!.find((p) => p.name === 'key-auth');
    if (!auth) continue;
    const keyNames = (auth.config?.key_names as string[] | undefined) ?? ['apikey'];
    const listed = (valueAt(plugin.config, 'privacy.key_names') as string[] | undefined) ?? [];
    for (const k of keyNames) t.true(listed.map((x) => x.toLowerCase()).includes(k.toLowerCase()) || ['apikey', 'x-api-key'].includes(k.toLowerCase()), `${where}: key-auth key name ${k} is not in privacy.key_names`);
  }
});

test('the validators reject what Kong rejects', (t) => {
  const base = (pluginEntries(kongYml).find((e) => e.plugin.name === PLUGIN && e.route?.name === 'orders')!.plugin.config ?? {}) as Record<string, unknown>;
  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['unknown field', { ...base, immudb_hots: 'x' }, /immudb_hots: unknown field/],
    ['unknown nested field', { ...base, queue: { ...(base.queue as object), max_batchsize: 1 } }, /queue\.max_batchsize: unknown field/],
    ['wrong type', { ...base, immudb_port: '3322' }, /immudb_port: expected an integer/],
    ['not an integer', { ...base, immudb_port: 3322.5 }, /immudb_port: expected an integer/],
    ['out of range', { ...base, immudb_port: 70000 }, /immudb_port: value should be between 1 and 65535/],
    ['not one of', { ...base, spool_fsync: 'always' }, /spool_fsync: expected one of/],
    ['explicit null in a required field', { ...base, immudb_host: null }, /immudb_host: required field missing/],
    ['empty string', { ...base, immudb_host: '' }, /immudb_host: length must be at least 1/],
    ['a record expected', { ...base, queue: 5 }, /queue: expected a record/],
    ['reference in a field Kong does not resolve', { ...base, immudb_host: '{vault://env/immudb-host}' }, /immudb_host: .* not referenceable/],
  ];
  for (const [what, config, re] of bad) {
    const { problems } = kongCheckConfig(schemaFields, config);
    t.true(problems.some((p) => re.test(p)), `${what}: expected a problem like ${re}, got ${JSON.stringify(problems)}`);
  }
  // the plugin's validator agrees on the ones it models
  for (const [what, config] of bad.slice(0, 6)) t.not(pluginCheckConfig(schemaFields, config).problems.length, 0, `plugin validator: ${what}`);
  // a Lua pattern is not a regular expression: Kong rejects what a RegExp would accept
  const field: KongFieldList = [{ id: { type: 'string', match: '^[a-z]{1,3}$' } }];
  t.true(new RegExp('^[a-z]{1,3}$').test('ab'));
  t.true(kongCheckConfig(field, { id: 'ab' }).problems.some((p) => /Lua pattern/.test(p)));
  t.deepEqual(kongCheckConfig(field, { id: 'a{1,3}' }).problems, [], 'in Lua, {1,3} is literal text');
});

test('docs/operations.md: the configuration reference is generated from the schema and current', (t) => {
  const file = join(projectRoot(), 'docs', 'operations.md');
  const doc = readFileSync(file, 'utf8');
  const rendered = renderConfigReference(schemaFields);
  t.is(replaceSection(doc, rendered), doc, 'docs/operations.md is stale: run `npx tsc -p . && node dist/scripts/gen-config-docs.js`');
  for (const path of leafPaths(schemaFields)) t.true(rendered.includes(`| \`${path}\` |`), `reference lists ${path}`);
});

test('Kong refuses, with our message, what StartInstance would refuse (no I/O needed to tell)', (t) => {
  // Before docs/decisions.md #17 these passed Kong (the Admin API, decK) and failed only at
  // StartInstance, on the route's first request, leaving its requests unaudited.
  const base = { immudb_username: 'audit_writer', immudb_password: '{vault://env/pw}' };
  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['no user', { immudb_password: 'pw' }, /^immudb_username: required field missing/],
    ['no password', { immudb_username: 'audit_writer' }, /^immudb_password: required field missing/],
    ['pseudonyms without a key', { ...base, privacy: { pseudonymize: ['client_ip'], pseudonym_key_id: 'k1' } }, /privacy\.@entity: privacy\.pseudonymize needs the secret 'pseudonym_key'/],
    ['pseudonyms without a key id', { ...base, privacy: { pseudonymize: ['client_ip'], pseudonym_key: '{vault://env/k}' } }, /privacy\.@entity: privacy\.pseudonymize needs 'pseudonym_key_id'/],
    ['a short key', { ...base, privacy: { pseudonymize: ['client_ip'], pseudonym_key: 'short', pseudonym_key_id: 'k1' } }, /privacy\.pseudonym_key: must be at least 32 characters/],
    ['a client key without its certificate', { ...base, tls: { enabled: true, client_key: 'env:KEY' } }, /tls\.@entity: all or none of these fields must be set: 'client_cert', 'client_key'/],
    ['a path template with a query', { ...base, privacy: { path_redactions: ['/reset?token=:redact'] } }, /privacy\.path_redactions\[1\]: a path template has no query string/],
    ['a relative file: reference', { ...base, tls: { enabled: true, client_cert: 'file:certs/c.pem', client_key: 'file:/etc/k.pem' } }, /tls\.client_cert: file: reference must be an absolute path/],
    ['a malformed env: reference', { ...base, privacy: { pseudonymize: ['subject'], pseudonym_key: 'env:AUDIT-KEY', pseudonym_key_id: 'k1' } }, /privacy\.pseudonym_key: invalid environment variable name in env: reference/],
    ['a CA that is not PEM', { ...base, tls: { enabled: true, ca_cert: 'my-ca.crt' } }, /tls\.ca_cert: expected certificates in PEM/],
    // Kong's queue vocabulary (http-log's queue block): understood, answered with the reason.
    ['max_retry_time', { ...base, queue: { max_retry_time: 60 } }, /queue\.max_retry_time: is not supported: an audit entry is never given up/],
    ['concurrency_limit -1', { ...base, queue: { concurrency_limit: -1 } }, /queue\.concurrency_limit: must be 1: each destination has exactly one writer/],
  ];
  for (const [what, config, re] of bad) {
    const kong = kongCheckConfig(schemaFields, config).problems;
    t.true(kong.some((p) => re.test(p)), `Kong, ${what}: expected ${re}, got ${JSON.stringify(kong)}`);
    t.not(pluginCheckConfig(schemaFields, config).problems.length, 0, `plugin, ${what}`);
  }
  const good: Array<[string, Record<string, unknown>]> = [
    ['a key from the environment', { ...base, privacy: { pseudonymize: ['client_ip'], pseudonym_key: 'env:AUDIT_KEY', pseudonym_key_id: 'k1' } }],
    ['a key from a vault', { ...base, privacy: { pseudonymize: ['subject'], pseudonym_key: '{vault://env/audit-key}', pseudonym_key_id: 'k1' } }],
    ['a literal key of 32 characters', { ...base, privacy: { pseudonymize: ['subject'], pseudonym_key: 'k'.repeat(32), pseudonym_key_id: 'k1' } }],
    ['mutual TLS', { ...base, tls: { enabled: true, client_cert: 'file:/etc/c.pem', client_key: 'file:/etc/k.pem' } }],
    ["http-log's queue block without max_retry_time", { ...base, queue: { max_batch_size: 1, max_coalescing_delay: 1, max_entries: 10000, max_bytes: 1048576, initial_retry_delay: 0.01, max_retry_delay: 60, concurrency_limit: 1 } }],
  ];
  for (const [what, config] of good) {
    t.deepEqual(kongCheckConfig(schemaFields, config).problems, [], `Kong, ${what}`);
    t.deepEqual(pluginCheckConfig(schemaFields, config).problems, [], `plugin, ${what}`);
  }
});

test('examples/: the decK file, the KongPlugin/KongClusterPlugin manifests and the Admin API script configure the plugin validly', (t) => {
  const configs: Array<[string, unknown]> = [];
  // decK: Kong's declarative format 3.0, plugins on routes, services and at the top level
  const deck = parseKongYml(readFileSync(join(projectRoot(), 'examples', 'deck', 'kong.yaml'), 'utf8'));
  t.is(String((deck as unknown as Record<string, unknown>)._format_version), '3.0');
  for (const { where, plugin } of pluginEntries(deck)) if (plugin.name === PLUGIN) configs.push([`deck ${where}`, plugin.config]);
  t.is(configs.length, 2, 'a route plugin and a global one');
  // Kong Ingress Controller
  const docs = YAML.parseAllDocuments(readFileSync(join(projectRoot(), 'examples', 'kubernetes', 'immudb-audit.yaml'), 'utf8')).map((d) => d.toJS() as Record<string, any>);
  const plugins = docs.filter((d) => d.apiVersion === 'configuration.konghq.com/v1' && (d.kind === 'KongPlugin' || d.kind === 'KongClusterPlugin'));
  t.deepEqual(plugins.map((d) => d.kind).sort(), ['KongClusterPlugin', 'KongPlugin']);
  for (const p of plugins) {
    t.is(p.plugin, PLUGIN);
    configs.push([`${p.kind} ${p.metadata.name}`, p.config]);
  }
  const ingress = docs.find((d) => d.kind === 'Ingress');
  t.is(ingress?.metadata.annotations['konghq.com/plugins'], plugins.find((p) => p.kind === 'KongPlugin')!.metadata.name);
  // the Admin API script's JSON bodies
  const script = readFileSync(join(projectRoot(), 'examples', 'admin-api', 'configure.sh'), 'utf8');
  const put = /plugins\/immudb-audit-payments" \\\n\s+-H 'content-type: application\/json' \\\n\s+--data '(\{[\s\S]*?\})' >/.exec(script);
  t.truthy(put, 'the PUT of the plugin');
  const body = JSON.parse(put![1]!) as { name: string; config: unknown };
  t.is(body.name, PLUGIN);
  configs.push(['admin-api PUT', body.config]);
  for (const [where, config] of configs) {
    t.deepEqual(kongCheckConfig(schemaFields, config).problems, [], `${where}: Kong would reject it`);
    t.deepEqual(pluginCheckConfig(schemaFields, config).problems, [], `${where}: the plugin would reject it`);
    const refs = kongCheckConfig(schemaFields, config).refs;
    t.true(refs.includes('immudb_password'), `${where}: the password is a vault reference`);
  }
  // what the script says Kong refuses, Kong refuses
  const refused = kongCheckConfig(schemaFields, { ...(body.config as object), privacy: { pseudonymize: ['client_ip'] } }).problems;
  t.true(refused.some((p) => /privacy\.pseudonymize needs the secret 'pseudonym_key'/.test(p)), JSON.stringify(refused));
});
