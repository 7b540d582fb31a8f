// The immudb record of an entry: its key (plugin/store/key-layout.ts) and the canonical JSON
// (RFC 8785) of the entry, encoded once. Canonical bytes let anyone re-derive the value digest
// from the JSON alone. The entry's trace index is decided here, from the entry object.
import type { AuditEntry } from './audit-entry.js';
import { canonicalJson } from './canonical-json.js';
import { ownedKeyValue } from './owned-buffers.js';
import { entryKey, rememberTraceIndex } from '../store/key-layout.js';

/** The number a record carries: its stream and its place in it (docs/decisions.md #30). */
export interface SequenceRef {
  number: number;
  stream: string;
}

export interface AuditRecord {
  id: string;
  key: Buffer;
  value: Buffer;
  /** The record's number, as in its JSON: a loss record names it if the record is lost (#41). */
  sequence?: SequenceRef | null;
}

export function encodeEntry(prefix: string, entry: AuditEntry): AuditRecord {
  const json = canonicalJson(entry);
  if (json === undefined) throw new Error('audit entry could not be encoded');
  const record = { id: entry.id, ...ownedKeyValue(entryKey(prefix, entry.id), json), sequence: entry.sequence };
  rememberTraceIndex(record.value, entry);
  return record;
}
