// The gap an auditor sees: when entries were lost (the spool could not write, immudb could not
// be reached and the memory for such entries was full), a loss record is written to immudb,
// verified like an entry, under `<key_prefix>:loss:<uuidv7>`: which node, when, how many, why.
import { auditId } from '../capture/audit-id.js';
import { canonicalJson } from '../capture/canonical-json.js';
import type { AuditRecord } from '../capture/encode.js';
import { ownedKeyValue } from '../capture/owned-buffers.js';
import { lossKey, parseKey, prefixOfEntryKey } from '../store/key-layout.js';

/**
 * The key prefix of a lost record's key, `<prefix>:entry:<id>` (or a lifecycle record's): the
 * loss record goes under it. Anything else cannot have been submitted, and an empty prefix would
 * put the loss record where no auditor of that log looks: an error.
 */
export function keyPrefixOf(key: Buffer): string {
  const prefix = prefixOfEntryKey(key) ?? (parseKey(key)?.kind === 'lifecycle' ? parseKey(key)!.prefix : undefined);
  if (prefix === undefined) throw new Error(`not an audit entry key: ${JSON.stringify(key.toString('latin1').slice(0, 200))}`);
  return prefix;
}

/** Entries lost in one episode, for one key prefix. */
export interface LossWindow {
  prefix: string;
  node: string;
  /** First and last loss, ms since epoch. */
  from: number;
  to: number;
  count: number;
  reasons: string[];
}

/** Adds one lost entry to the window (a new one when none). */
export function noteLoss(w: LossWindow | undefined, prefix: string, node: string, at: number, reason: string): LossWindow {
  if (!w) return { prefix, node, from: at, to: at, count: 1, reasons: [reason] };
  w.from = Math.min(w.from, at);
  w.to = Math.max(w.to, at);
  w.count++;
  if (!w.reasons.includes(reason) && w.reasons.length < 8) w.reasons.push(reason);
  return w;
}

/** The record written to immudb for a loss window. */
export function encodeLossRecord(w: LossWindow, now = Date.now()): AuditRecord {
  const id = auditId(now);
  const json = canonicalJson({
    type: 'loss',
    node: w.node,
    first_lost_at: new Date(w.from).toISOString(),
    last_lost_at: new Date(w.to).toISOString(),
    entries_lost: w.count,
    reason: w.reasons.join('; '),
    recorded_at: new Date(now).toISOString(),
  });
  return { id, ...ownedKeyValue(lossKey(w.prefix, id), json!) };
}

/** Loss windows as saved in the spool's loss ledger (JSON), and back. */
export function parseLossWindows(text: string): LossWindow[] {
  try {
    const v = JSON.parse(text) as unknown;
    if (!Array.isArray(v)) return [];
    return v.filter((w): w is LossWindow => typeof w === 'object' && w !== null && typeof (w as LossWindow).prefix === 'string'
      && Number.isSafeInteger((w as LossWindow).count) && (w as LossWindow).count > 0
      && Number.isFinite((w as LossWindow).from) && Number.isFinite((w as LossWindow).to)
      && Array.isArray((w as LossWindow).reasons) && typeof (w as LossWindow).node === 'string');
  } catch {
    return [];
  }
}
