// The immudb record of an entry: a readable key and the canonical JSON (RFC 8785) of the entry,
// encoded once. Canonical bytes let anyone re-derive the value digest from the JSON alone.
import type { AuditEntry } from './audit-entry.js';
import { canonicalJson } from './canonical-json.js';
import { ownedKeyValue } from './owned-buffers.js';

export interface AuditRecord {
  id: string;
  key: Buffer;
  value: Buffer;
}

export function entryKey(prefix: string, id: string): string {
  return `${prefix}:entry:${id}`;
}

export function encodeEntry(prefix: string, entry: AuditEntry): AuditRecord {
  const json = canonicalJson(entry);
  if (json === undefined) throw new Error('audit entry could not be encoded');
  return { id: entry.id, ...ownedKeyValue(entryKey(prefix, entry.id), json) };
}
