// Secrets in the plugin configuration: which fields hold them, how references to them are
// resolved, and how they are kept out of everything kong-pdk echoes back.
//
// Three ways to give a secret (docs/security.md, "Secrets"):
// - `{vault://<backend>/<name>}`: a Kong vault reference. Kong resolves references in fields
//   its schema marks `referenceable` before it sends the configuration, so the plugin sees the
//   value. A reference that arrives unresolved is refused (it would otherwise be used as the
//   secret itself).
// - `env:<NAME>`: resolved here, in the plugin server process, from its environment.
// - `file:<absolute path>`: resolved here, from a file readable by the plugin server (a mounted
//   secret); one trailing newline is dropped.
// Anything else is the secret itself (fine in tests, not in production).
//
// Error messages name the field, the variable or the file, never a value.
import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { ConfigError } from '../config/kong-schema.js';

/** Fields whose value is a secret: resolved, never logged, redacted in kong-pdk replies. */
export const SECRET_FIELDS: ReadonlyArray<readonly string[]> = [
  ['immudb_password'],
  ['privacy', 'pseudonym_key'],
  ['tls', 'client_key'],
];

/** Fields that accept references (secrets, and material that is merely sensitive or large). */
export const REFERENCE_FIELDS: ReadonlyArray<readonly string[]> = [
  ['immudb_username'],
  ['immudb_password'],
  ['privacy', 'pseudonym_key'],
  ['tls', 'ca_cert'],
  ['tls', 'client_cert'],
  ['tls', 'client_key'],
];

export const REDACTED = '<redacted>';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The record holding the last path element, if every step exists. */
function parentOf(obj: unknown, path: readonly string[]): Record<string, unknown> | null {
  let cur: unknown = obj;
  for (const p of path.slice(0, -1)) {
    if (!isRecord(cur) || !Object.prototype.hasOwnProperty.call(cur, p)) return null;
    cur = cur[p];
  }
  return isRecord(cur) ? cur : null;
}

/**
 * Overwrites every secret field of a raw configuration object in place (kong-pdk keeps this very
 * object and returns it in StartInstance, InstanceStatus and CloseInstance replies).
 */
export function redactSecretFields(raw: unknown): void {
  for (const path of SECRET_FIELDS) {
    const parent = parentOf(raw, path);
    const name = path[path.length - 1]!;
    if (parent && Object.prototype.hasOwnProperty.call(parent, name) && parent[name] !== null && parent[name] !== undefined) {
      parent[name] = REDACTED;
    }
  }
}

/** A copy of a configuration with every secret field redacted (for logs and status output). */
export function withoutSecrets<T>(config: T): T {
  const copy = structuredClone(config);
  redactSecretFields(copy);
  return copy;
}

export interface ResolveOptions {
  env?: NodeJS.ProcessEnv;
  readFile?: (path: string) => string;
}

/** Resolves one reference; returns the value, or pushes a problem and returns null. */
export function resolveReference(field: string, value: string, problems: string[], opts: ResolveOptions = {}): string | null {
  const env = opts.env ?? process.env;
  const readFile = opts.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  if (/^\{vault:\/\//.test(value)) {
    problems.push(`${field}: the vault reference was not resolved by Kong (is the vault configured, and is Kong's schema for this plugin up to date?)`);
    return null;
  }
  if (value.startsWith('env:')) {
    const name = value.slice(4);
    if (!ENV_NAME.test(name)) {
      problems.push(`${field}: invalid environment variable name in env: reference`);
      return null;
    }
    const v = env[name];
    if (v === undefined || v === '') {
      problems.push(`${field}: environment variable ${name} is not set in the plugin server's environment`);
      return null;
    }
    return v;
  }
  if (value.startsWith('file:')) {
    const path = value.slice(5);
    if (!isAbsolute(path)) {
      problems.push(`${field}: file: reference must be an absolute path`);
      return null;
    }
    try {
      const text = readFile(path).replace(/\r?\n$/, '');
      if (!text) {
        problems.push(`${field}: file ${path} is empty`);
        return null;
      }
      return text;
    } catch (e) {
      problems.push(`${field}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
      return null;
    }
  }
  return value;
}

/**
 * A copy of a validated configuration with every env:/file: reference resolved. Throws a
 * ConfigError naming each field that could not be resolved (never a value).
 */
export function resolveSecretRefs<T>(config: T, opts: ResolveOptions = {}): T {
  const out = structuredClone(config);
  const problems: string[] = [];
  for (const path of REFERENCE_FIELDS) {
    const parent = parentOf(out, path);
    const name = path[path.length - 1]!;
    if (!parent) continue;
    const v = parent[name];
    if (typeof v !== 'string') continue;
    const resolved = resolveReference(path.join('.'), v, problems, opts);
    if (resolved !== null) parent[name] = resolved;
  }
  if (problems.length) throw new ConfigError(problems);
  return out;
}

/**
 * Kong resolves a vault reference it cannot resolve to "" and keeps the reference in the
 * record's "$refs": say which reference failed rather than "length must be at least 1".
 * (References are names, not secrets.)
 */
export function unresolvedVaultRefs(raw: unknown): string[] {
  const problems: string[] = [];
  for (const path of REFERENCE_FIELDS) {
    const parent = parentOf(raw, path);
    const name = path[path.length - 1]!;
    if (!parent || parent[name] !== '') continue;
    const refs = parent.$refs;
    const ref = isRecord(refs) ? refs[name] : undefined;
    if (typeof ref === 'string') problems.push(`${path.join('.')}: Kong could not resolve the vault reference ${ref.slice(0, 200)} (it sent an empty value)`);
  }
  return problems;
}
