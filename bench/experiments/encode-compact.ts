// plugin/capture/encode.ts with the record's key and value in one exact-size allocation
// (bench/experiments/compact-record.ts); canonical JSON still by canonicalize. Same output.
import canonicalize from 'canonicalize';
import type { AuditEntry } from '../../plugin/capture/audit-entry.js';
import type { AuditRecord } from '../../plugin/capture/encode.js';
import { compactRecord } from './compact-record.js';

export type { AuditRecord };

export function entryKey(prefix: string, id: string): string {
  return `${prefix}:entry:${id}`;
}

export function encodeEntry(prefix: string, entry: AuditEntry): AuditRecord {
  const json = canonicalize(entry);
  if (json === undefined) throw new Error('audit entry could not be encoded');
  return compactRecord(entry.id, entryKey(prefix, entry.id), json);
}
