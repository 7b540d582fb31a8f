// `find --trace T`: the trace index names candidates; an entry belongs to T only if its own
// top-level trace_id is T (read with proofs under --verify). Index keys that name an entry of
// another trace, a missing entry, or that are not index keys at all are reported, never shown
// as members: the index is written by whoever can write to the database, the entry is what counts.
// A trace the plugin started itself has no index key (decision #38): when immudb's index names no
// candidate, `others` (the auditor's own index, fed only by verified transactions) may name them,
// checked the same way.
import { NotFoundError, type AuditReader, type ReadResult } from './audit-reader.js';
import { entryKey } from '../store/key-layout.js';

export interface TraceMember extends ReadResult {
  id: string;
  verified: boolean;
}

export interface TraceMismatch {
  /** The audit id the index key names (null for a key that is not an index key). */
  id: string | null;
  key: string;
  /** The entry's own trace id (undefined when there is no entry to read). */
  entryTraceId?: string | null;
  reason: string;
}

export interface TraceFindResult {
  traceId: string;
  members: TraceMember[];
  mismatches: TraceMismatch[];
}

function traceIdOf(entry: unknown): string | null {
  const t = typeof entry === 'object' && entry !== null ? (entry as { trace_id?: unknown }).trace_id : undefined;
  return typeof t === 'string' ? t : null;
}

/** A trace id as printed: quoted (control characters escaped) unless it is one. */
function shown(traceId: string | null): string {
  return traceId !== null && /^[0-9a-f]{32}$/.test(traceId) ? traceId : JSON.stringify(traceId);
}

export async function findTrace(reader: AuditReader, traceId: string, prefix: string, verify: boolean, others?: (traceId: string) => Promise<string[]>): Promise<TraceFindResult> {
  const t = traceId.toLowerCase();
  const found = await reader.findByTrace(t);
  const { strays } = found;
  const ids = !found.ids.length && !strays.length && others ? await others(t) : found.ids;
  const how = verify ? '' : ' (unverified read)';
  const mismatches: TraceMismatch[] = strays.map((key) => ({ id: null, key, reason: `key ${JSON.stringify(key)} under the index of trace ${t} is not a trace index key` }));
  const members: TraceMember[] = [];
  for (const id of ids) {
    let r: ReadResult;
    try {
      r = verify ? await reader.verify(id) : await reader.get(id);
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
      mismatches.push({ id, key: entryKey(prefix, id), reason: `the index lists ${id} under trace ${t}, but entry ${entryKey(prefix, id)} was not found` });
      continue;
    }
    const own = traceIdOf(r.entry);
    if (own === t) members.push({ ...r, id, verified: verify });
    else mismatches.push({ id, key: r.key, entryTraceId: own, reason: `the index lists ${id} under trace ${t}, but the entry's trace_id is ${shown(own)}${how}` });
  }
  return { traceId: t, members, mismatches };
}
