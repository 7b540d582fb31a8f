// plugin/capture/encode.ts with canonicalJson (bench/experiments/canonical-json.ts) instead of
// the canonicalize package, and the record in one exact-size allocation
// (bench/experiments/compact-record.ts). Same exports, same output.
import type { AuditEntry } from '../../plugin/capture/audit-entry.js';
import type { AuditRecord } from '../../plugin/capture/encode.js';
import { canonicalJson } from './canonical-json.js';
import { compactRecord } from './compact-record.js';

export type { AuditRecord };

export function entryKey(prefix: string, id: string): string {
  return `${prefix}:entry:${id}`;
}

export function encodeEntry(prefix: string, entry: AuditEntry): AuditRecord {
  const json = canonicalJson(entry);
  if (json === undefined) throw new Error('audit entry could not be encoded');
  return compactRecord(entry.id, entryKey(prefix, entry.id), json);
}
