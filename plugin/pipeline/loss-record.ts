// The gap an auditor sees: when entries were lost (the spool could not write, immudb could not
// be reached and the memory for such entries was full), a loss record is written to immudb,
// verified like an entry, under `<key_prefix>:loss:<uuidv7>`: which node, when, how many, why,
// and which sequence numbers (docs/decisions.md #41), so that a gap the plugin declared can be
// told from one it did not.
import { auditId } from '../capture/audit-id.js';
import { canonicalJson } from '../capture/canonical-json.js';
import type { AuditRecord, SequenceRef } from '../capture/encode.js';
import { ownedKeyValue } from '../capture/owned-buffers.js';
import { lossKey, parseKey, prefixOfEntryKey } from '../store/key-layout.js';
import { addNumber, rangesSize, validRanges, type NumberRange } from '../store/number-ranges.js';

/**
 * Ranges of lost numbers a window keeps. Losses come in runs (everything after memory filled up,
 * lifecycle entries included, until something is written again), so a few ranges name them all;
 * the cap keeps a window's ledger text small (the ledger slot is 16 KiB for every window).
 */
export const MAX_LOSS_RANGES = 32;

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

/** The numbers of a window's lost entries in one stream, as sorted, disjoint, non-adjacent ranges. */
export interface LostNumbers {
  stream: string;
  ranges: NumberRange[];
  /** A number did not fit (MAX_LOSS_RANGES reached): the ranges do not name every lost entry. */
  truncated: boolean;
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
  /** The lost entries' numbers (absent when none had one, or in a ledger written before they were kept). */
  sequence?: LostNumbers;
}

/**
 * Adds one lost entry to the window (a new one when none). `seq` is the entry's number, if it
 * has one; a number of another stream than the window's (a window belongs to one run of one
 * prefix, so not expected) is counted and not listed, like an unnumbered entry.
 */
export function noteLoss(w: LossWindow | undefined, prefix: string, node: string, at: number, reason: string, seq?: SequenceRef | null): LossWindow {
  if (!w) w = { prefix, node, from: at, to: at, count: 0, reasons: [reason] };
  w.from = Math.min(w.from, at);
  w.to = Math.max(w.to, at);
  w.count++;
  if (!w.reasons.includes(reason) && w.reasons.length < 8) w.reasons.push(reason);
  if (seq) {
    w.sequence ??= { stream: seq.stream, ranges: [], truncated: false };
    if (w.sequence.stream === seq.stream && !addNumber(w.sequence.ranges, seq.number, MAX_LOSS_RANGES)) w.sequence.truncated = true;
  }
  return w;
}

/** The numbers a window names, for log lines: ` (numbers 7–9, 12 of stream <uuid>)`, or ''. */
export function describeNumbers(w: LossWindow): string {
  const s = w.sequence;
  if (!s?.ranges.length) return '';
  const shown = s.ranges.slice(0, 8).map(([a, b]) => (a === b ? `${a}` : `${a}\u2013${b}`)).join(', ');
  return ` (numbers ${shown}${s.ranges.length > 8 || s.truncated ? ', \u2026' : ''} of stream ${s.stream})`;
}

/** The record written to immudb for a loss window. */
export function encodeLossRecord(w: LossWindow, now = Date.now()): AuditRecord {
  const id = auditId(now);
  const listed = w.sequence ? rangesSize(w.sequence.ranges) : 0;
  const json = canonicalJson({
    type: 'loss',
    node: w.node,
    first_lost_at: new Date(w.from).toISOString(),
    last_lost_at: new Date(w.to).toISOString(),
    entries_lost: w.count,
    // `ranges` name `entries_lost - unlisted` numbers; `unlisted` are entries counted whose
    // number is not named (none, another stream, or beyond the cap: `ranges_truncated`).
    sequence: w.sequence ? { stream: w.sequence.stream, ranges: w.sequence.ranges, ranges_truncated: w.sequence.truncated, unlisted: w.count - listed } : null,
    reason: w.reasons.join('; '),
    recorded_at: new Date(now).toISOString(),
  });
  return { id, ...ownedKeyValue(lossKey(w.prefix, id), json!) };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Loss windows as saved in the spool's loss ledger (JSON), and back. Windows of a ledger written
 * before numbers were kept have none and stay valid; numbers that do not hold together (not
 * ranges, more than counted) are dropped, the count kept: the record then names no number.
 */
export function parseLossWindows(text: string): LossWindow[] {
  try {
    const v = JSON.parse(text) as unknown;
    if (!Array.isArray(v)) return [];
    const windows = v.filter((w): w is LossWindow => typeof w === 'object' && w !== null && typeof (w as LossWindow).prefix === 'string'
      && Number.isSafeInteger((w as LossWindow).count) && (w as LossWindow).count > 0
      && Number.isFinite((w as LossWindow).from) && Number.isFinite((w as LossWindow).to)
      && Array.isArray((w as LossWindow).reasons) && typeof (w as LossWindow).node === 'string');
    for (const w of windows) {
      const s = w.sequence as Partial<LostNumbers> | undefined;
      if (s === undefined) continue;
      if (typeof s !== 'object' || s === null || typeof s.stream !== 'string' || !UUID.test(s.stream) || typeof s.truncated !== 'boolean' || !validRanges(s.ranges, MAX_LOSS_RANGES) || rangesSize(s.ranges) > w.count) delete w.sequence;
    }
    return windows;
  } catch {
    return [];
  }
}
