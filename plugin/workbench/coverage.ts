// Coverage of a verified range (docs/decisions.md #30, #31, #41): from the sequence numbers of
// the audit and lifecycle entries a walk verified, per node stream, the numbers missing (gaps),
// the numbers the plugin itself explained (reserved by a run that ended uncleanly and never
// used), and the periods with neither entries nor a heartbeat (silences). A gap whose numbers a
// verified loss record of the stream names is still a gap, marked as a loss the plugin recorded;
// a loss record that does not hold together (its count, or numbers that are in the log) is
// reported and explains nothing. Fed record by record in the walk's order; memory grows with the
// number of gaps and loss records, not of entries.
import type { AuditReader, VerifyAllOptions, VerifyAllResult } from '../reader/audit-reader.js';
import { parseKey } from '../store/key-layout.js';
import { rangesSize, validRanges, type NumberRange } from '../store/number-ranges.js';

/**
 * Exit code of `verify --all` and `search` when the verified range has gaps: the proofs held
 * (else 3), but records a node numbered are not in the log.
 */
export const COVERAGE_GAP_EXIT = 5;

/** A range of numbers of one stream, both ends included. */
interface Range {
  from: number;
  to: number;
}

/** Numbers of a stream seen, and the times of the records at both ends (a gap's neighbours). */
interface Run extends Range {
  fromTime: number | null;
  toTime: number | null;
}

/** A time window [since, until) a report is limited to; an end left out is open. */
export interface CoverageWindow {
  since?: number;
  until?: number;
}

export interface CoverageGap {
  node: string;
  stream: string;
  from: number;
  to: number;
  count: number;
  /** Why it is reported although the plugin said something about it (e.g. spool damage). */
  note: string | null;
  /** The loss record that names these numbers (the plugin declared them lost); null: unexplained. */
  recorded_loss: RecordedLoss | null;
}

/** A verified loss record, as a gap refers to it. */
export interface RecordedLoss {
  /** Its key, `<prefix>:loss:<id>`. */
  key: string;
  reason: string;
  entries_lost: number;
  recorded_at: string | null;
}

/** A verified loss record of the range: what it names, and whether it holds together. */
export interface LossReport extends RecordedLoss {
  node: string;
  /** The stream of the numbers it names; null when it names none (or was written before #41). */
  stream: string | null;
  ranges: NumberRange[];
  /** Entries it counts without naming their numbers. */
  unlisted: number;
  ranges_truncated: boolean;
  /** Why its numbers are not trusted (then it explains no gap); empty when they are. */
  problems: string[];
}

export interface ExplainedRange {
  node: string;
  stream: string;
  from: number;
  to: number;
  reason: string;
}

export interface Silence {
  node: string;
  stream: string;
  /** Times of the records before and after the silence (ISO 8601). */
  from: string;
  to: string;
  seconds: number;
  /** The heartbeat interval the node announced; silences longer than twice it are reported. */
  heartbeat_seconds: number;
  note: string | null;
}

export interface StreamSummary {
  node: string;
  stream: string;
  first: number;
  last: number;
  records: number;
  starts: number;
  clean_stops: number;
}

export interface CoverageReport {
  /** Whether the range began at tx 1: then every stream is checked from number 1. */
  from_start: boolean;
  streams: StreamSummary[];
  gaps: CoverageGap[];
  explained: ExplainedRange[];
  silences: Silence[];
  /** The loss records verified in the range (docs/decisions.md #41). */
  losses: LossReport[];
  /** Audit entries without a sequence number (written before it existed, or unnumbered). */
  unnumbered: number;
  /** Numbers seen twice (a stream's number handed out twice would be a defect). */
  duplicates: number;
}

interface Start {
  number: number;
  previousEnded: 'clean' | 'unclean' | null;
  spoolMissing: number;
}

export interface StreamState {
  node: string;
  stream: string;
  ranges: Run[];
  records: number;
  duplicates: number;
  starts: Start[];
  cleanStops: number;
  heartbeatSeconds: number;
  lastTime: number | null;
  /** The earliest time of its records (with lastTime, the span a window is compared with). */
  firstTime: number | null;
  /** A clean `stopping` came after the last `started`: the silence until the next start is explained. */
  stoppedCleanly: boolean;
  silences: Silence[];
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The numbers, node and time of one record's JSON, or undefined when it carries no number. */
function readRecord(json: Json): { stream: string; number: number; node: string | null; time: number | null } | undefined {
  const seq = obj(json.sequence);
  if (!seq || typeof seq.stream !== 'string' || !UUID.test(seq.stream) || !Number.isSafeInteger(seq.number) || (seq.number as number) < 1) return undefined;
  const where = obj(json.where);
  const node = [json.node_id, json.hostname, where?.node_id, where?.hostname].find((v): v is string => typeof v === 'string' && v.length > 0) ?? null;
  const t = typeof json.time === 'string' ? Date.parse(json.time) : NaN;
  return { stream: seq.stream, number: seq.number as number, node, time: Number.isFinite(t) ? t : null };
}

/** A loss record's JSON as a report entry; problems found in the record itself are noted. */
function readLoss(key: string, json: Json | undefined): LossReport {
  const problems: string[] = [];
  const lost = json?.entries_lost;
  const entriesLost = Number.isSafeInteger(lost) && (lost as number) > 0 ? (lost as number) : 0;
  if (!entriesLost) problems.push('entries_lost is not a positive count');
  const r: LossReport = {
    key,
    node: typeof json?.node === 'string' ? json.node : '(unnamed node)',
    reason: typeof json?.reason === 'string' ? json.reason : '',
    entries_lost: entriesLost,
    recorded_at: typeof json?.recorded_at === 'string' ? json.recorded_at : null,
    stream: null,
    ranges: [],
    unlisted: entriesLost,
    ranges_truncated: false,
    problems,
  };
  if (json?.type !== 'loss') problems.push('not a loss record (type)');
  const seq = json?.sequence;
  // Written before loss records named numbers: it counts, and names nothing.
  if (seq === undefined || seq === null) return r;
  const o = obj(seq);
  if (!o || typeof o.stream !== 'string' || !UUID.test(o.stream) || !validRanges(o.ranges) || !Number.isSafeInteger(o.unlisted) || (o.unlisted as number) < 0) {
    problems.push('its sequence is not a stream with sorted, disjoint ranges and an unlisted count');
    return r;
  }
  r.stream = o.stream;
  r.ranges = o.ranges;
  r.unlisted = o.unlisted as number;
  r.ranges_truncated = o.ranges_truncated === true;
  const listed = rangesSize(o.ranges);
  if (listed + r.unlisted !== entriesLost) problems.push(`it counts ${entriesLost} entries lost, but names ${listed} number(s) and ${r.unlisted} unlisted`);
  return r;
}

/** A collector's state as the index saves it (coverage-table.ts). */
export interface CoverageState {
  version: 1;
  streams: StreamState[];
  losses: LossReport[];
  unnumbered: number;
}

/**
 * `verify --all` as the command runs it: the verified walk, and the coverage of what it verified
 * (gaps per node, silences), which reads every entry's number. The benchmarks time this too.
 */
export async function verifyAllCovered(reader: Pick<AuditReader, 'verifyAll'>, opts: Omit<VerifyAllOptions, 'onEntries' | 'onLifecycle'> = {}): Promise<{ result: VerifyAllResult; coverage: CoverageReport }> {
  const collector = new CoverageCollector();
  const result = await reader.verifyAll({ ...opts, ...collector.walkHooks() });
  return { result, coverage: collector.report(result.fromTx <= 1) };
}

export class CoverageCollector {
  private readonly streams = new Map<string, StreamState>();
  private readonly losses: LossReport[] = [];
  private unnumbered = 0;

  /** Callbacks for AuditReader.verifyAll: its audit entries and lifecycle entries, as verified. */
  walkHooks(): { onEntries: (tx: unknown, records: ReadonlyArray<{ key: Buffer; value: Buffer }>) => void; onLifecycle: (tx: unknown, records: ReadonlyArray<{ key: Buffer; value: Buffer }>) => void } {
    // The walk hands over every verified key under `<prefix>:entry:` as an audit entry, whatever
    // its id, as the index counts them (parseEntry); lifecycle entries and loss records by key.
    return {
      onEntries: (_tx, records) => {
        for (const r of records) this.add('entry', r.value);
      },
      onLifecycle: (_tx, records) => {
        for (const r of records) this.add(r.key, r.value);
      },
    };
  }

  /** An audit entry's number, time and node, already read (the index: coverage-table.ts). */
  addNumber(stream: string, number: number, time: number | null, node: string | null = null): void {
    this.note(this.stream(stream, node), number, time, undefined, undefined);
  }

  /** What has been added, as JSON-safe data (the index keeps it between updates). */
  state(): CoverageState {
    return { version: 1, streams: [...this.streams.values()], losses: this.losses, unnumbered: this.unnumbered };
  }

  /** A collector that goes on from a saved state. */
  static restore(state: CoverageState): CoverageCollector {
    if (state?.version !== 1 || !Array.isArray(state.streams) || !Array.isArray(state.losses)) throw new Error('the coverage state is not of version 1');
    const c = new CoverageCollector();
    for (const s of state.streams) c.streams.set(s.stream, s);
    c.losses.push(...state.losses);
    c.unnumbered = state.unnumbered;
    return c;
  }

  private stream(stream: string, node: string | null): StreamState {
    let s = this.streams.get(stream);
    if (!s) {
      s = { node: node ?? '(unnamed node)', stream, ranges: [], records: 0, duplicates: 0, starts: [], cleanStops: 0, heartbeatSeconds: 0, lastTime: null, firstTime: null, stoppedCleanly: false, silences: [] };
      this.streams.set(stream, s);
    }
    if (node && s.node === '(unnamed node)') s.node = node;
    return s;
  }

  /**
   * One verified record: an audit entry, a lifecycle entry or a loss record (key and value as
   * written); `key` may be just the kind ('entry', 'lifecycle') when the key is not at hand.
   */
  add(key: Buffer | string, value: Buffer | string): void {
    const kind = key === 'entry' || key === 'lifecycle' ? key : parseKey(key)?.kind;
    if (kind !== 'entry' && kind !== 'lifecycle' && kind !== 'loss') return;
    // An entry of a known stream: its number and time read without decoding the whole entry.
    if (kind === 'entry' && typeof value !== 'string') {
      const fast = entrySequence(value);
      const s = fast && this.streams.get(fast.stream);
      if (s) return this.note(s, fast.number, fast.time, undefined, undefined);
    }
    const text = typeof value === 'string' ? value : value.toString('utf8');
    if (kind === 'loss') {
      let json: Json | undefined;
      try {
        json = obj(JSON.parse(text));
      } catch {
        json = undefined;
      }
      this.losses.push(readLoss(key.toString(), json));
      return;
    }
    let json: Json | undefined;
    try {
      json = obj(JSON.parse(text));
    } catch {
      json = undefined;
    }
    const r = json && readRecord(json);
    if (!r) {
      if (kind === 'entry') this.unnumbered++;
      return;
    }
    const s = this.stream(r.stream, r.node);
    this.note(s, r.number, r.time, kind === 'lifecycle' ? String(json!.event) : undefined, json);
  }

  private note(s: StreamState, number: number, time: number | null, event: string | undefined, json: Json | undefined) {
    s.records++;
    if (!insert(s.ranges, number, time)) s.duplicates++;
    if (event === 'started') {
      const prev = obj(json!.previous_run);
      const spool = obj(json!.spool);
      s.starts.push({
        number,
        previousEnded: prev?.ended === 'clean' ? 'clean' : prev ? 'unclean' : null,
        spoolMissing: typeof spool?.missing === 'number' ? spool.missing : 0,
      });
      if (typeof json!.heartbeat_seconds === 'number') s.heartbeatSeconds = json!.heartbeat_seconds;
    }
    if (time !== null) this.passTime(s, time, event === 'started');
    // Entries numbered during the shutdown may follow the `stopping` entry: only the next
    // `started` ends the stop.
    if (event === 'stopping') {
      s.cleanStops++;
      s.stoppedCleanly = true;
    } else if (event === 'started') s.stoppedCleanly = false;
  }

  /** A record at time `t`: a silence since the last one is noted when it is too long. */
  private passTime(s: StreamState, t: number, isStart: boolean) {
    const last = s.lastTime;
    if (last !== null && t > last && s.heartbeatSeconds > 0 && t - last > 2 * s.heartbeatSeconds * 1000) {
      // After a clean stop the node was not running: no silence to report (the stop says why).
      if (!(s.stoppedCleanly && isStart)) {
        s.silences.push({
          node: s.node,
          stream: s.stream,
          from: new Date(last).toISOString(),
          to: new Date(t).toISOString(),
          seconds: Math.round((t - last) / 1000),
          heartbeat_seconds: s.heartbeatSeconds,
          note: isStart ? 'the run before ended without a stopping entry (crash or kill)' : null,
        });
      }
    }
    if (last === null || t > last) s.lastTime = t;
    if (s.firstTime === null || t < s.firstTime) s.firstTime = t;
  }

  /**
   * `fromStart`: the walk began at tx 1, so every stream is checked from number 1. `window`: only
   * what may concern records of that time: the numbers missing between two records whose times
   * span part of it (their times are unknown: they were numbered between those two), the
   * silences that overlap it, and the streams with records in it or such a finding; a record of
   * unknown time counts as in every window.
   */
  report(fromStart: boolean, window?: CoverageWindow): CoverageReport {
    const inWindow = (a: number | null, b: number | null) => {
      if (!window || a === null || b === null) return true;
      return (window.until === undefined || Math.min(a, b) < window.until) && (window.since === undefined || Math.max(a, b) >= window.since);
    };
    const all = this.losses.map((l) => ({ ...l, problems: [...l.problems] }));
    const out: CoverageReport = { from_start: fromStart, streams: [], gaps: [], explained: [], silences: [], losses: window ? [] : all, unnumbered: this.unnumbered, duplicates: 0 };
    for (const s of this.streams.values()) {
      if (!s.ranges.length) continue;
      const first = s.ranges[0]!.from;
      const last = s.ranges[s.ranges.length - 1]!.to;
      const losses = all.filter((l) => l.stream === s.stream);
      const claims = trustedClaims(losses, s.ranges, fromStart ? 1 : first, last);
      const found = { gaps: out.gaps.length, explained: out.explained.length, silences: out.silences.length };
      out.silences.push(...s.silences.filter((x) => inWindow(Date.parse(x.from), Date.parse(x.to))));
      // Each hole with the times of the records on either side (none before number 1).
      const holes: Array<Range & { after: number | null; before: number | null }> = [];
      if (fromStart && first > 1) holes.push({ from: 1, to: first - 1, after: -Infinity, before: s.ranges[0]!.fromTime });
      for (let i = 1; i < s.ranges.length; i++) holes.push({ from: s.ranges[i - 1]!.to + 1, to: s.ranges[i]!.from - 1, after: s.ranges[i - 1]!.toTime, before: s.ranges[i]!.fromTime });
      for (const hole of holes) {
        if (!inWindow(hole.after, hole.before)) continue;
        for (const h of splitByClaims(hole, claims)) {
          if (h.loss) {
            out.gaps.push({ node: s.node, stream: s.stream, from: h.from, to: h.to, count: h.to - h.from + 1, note: null, recorded_loss: { key: h.loss.key, reason: h.loss.reason, entries_lost: h.loss.entries_lost, recorded_at: h.loss.recorded_at } });
            continue;
          }
          // A run that ended uncleanly reserved numbers up to the next run's first minus one:
          // the tail it never used is explained by the next run's `started` entry, unless the
          // spool reported records missing when it opened (then they may be real losses).
          const start = s.starts.find((st) => st.number === h.to + 1 && st.previousEnded === 'unclean');
          if (start && start.spoolMissing === 0) {
            out.explained.push({ node: s.node, stream: s.stream, from: h.from, to: h.to, reason: 'reserved by a run that ended without a clean stop, never used (its next run\'s started entry)' });
            continue;
          }
          out.gaps.push({
            node: s.node, stream: s.stream, from: h.from, to: h.to, count: h.to - h.from + 1,
            note: start ? `the spool reported ${start.spoolMissing} record(s) missing when the next run started` : null,
            recorded_loss: null,
          });
        }
      }
      const findings = out.gaps.length > found.gaps || out.explained.length > found.explained || out.silences.length > found.silences;
      if (window && !findings && !inWindow(s.firstTime, s.lastTime)) continue;
      out.streams.push({ node: s.node, stream: s.stream, first, last, records: s.records, starts: s.starts.length, clean_stops: s.cleanStops });
      out.duplicates += s.duplicates;
      if (window) out.losses.push(...losses);
    }
    return out;
  }
}

/**
 * The numbers of a stream's loss records that may explain its gaps, sorted by their first
 * number. A record naming a number that is in the log (checked from `from` to `to`, the numbers
 * this report looked at) is wrong about what it counts: noted as its problem, and none of its
 * numbers is trusted. Numbers after `to` are not checked here: a loss record can be proven before
 * the next number of its stream is written.
 */
function trustedClaims(losses: LossReport[], seen: Range[], from: number, to: number): Array<{ from: number; to: number; loss: LossReport }> {
  const out: Array<{ from: number; to: number; loss: LossReport }> = [];
  for (const l of losses) {
    const inLog: string[] = [];
    for (const [a, b] of l.ranges) {
      for (const r of seen) {
        const lo = Math.max(a, r.from, from);
        const hi = Math.min(b, r.to, to);
        if (lo <= hi) inLog.push(lo === hi ? `${lo}` : `${lo}\u2013${hi}`);
      }
    }
    if (inLog.length) l.problems.push(`it names number(s) that are in the log: ${inLog.slice(0, 10).join(', ')}${inLog.length > 10 ? ', \u2026' : ''}`);
    if (l.problems.length) continue;
    for (const [a, b] of l.ranges) out.push({ from: a, to: b, loss: l });
  }
  return out.sort((x, y) => x.from - y.from);
}

/** A hole cut into the parts that trusted loss records name (the first record naming a number wins) and the rest. */
function splitByClaims(hole: Range, claims: ReadonlyArray<{ from: number; to: number; loss: LossReport }>): Array<Range & { loss?: LossReport }> {
  const out: Array<Range & { loss?: LossReport }> = [];
  let at = hole.from;
  for (const c of claims) {
    if (at > hole.to) break;
    if (c.to < at) continue;
    if (c.from > hole.to) break;
    if (c.from > at) out.push({ from: at, to: c.from - 1 });
    const to = Math.min(c.to, hole.to);
    out.push({ from: Math.max(c.from, at), to, loss: c.loss });
    at = to + 1;
  }
  if (at <= hole.to) out.push({ from: at, to: hole.to });
  return out;
}

// In an entry's canonical JSON (members in order, decisions #14) the top-level sequence comes
// right after schema_version, then sizes, span_id and time. Nothing before them can hold this
// text: string values escape their quotes, and no earlier member holds an object with these keys
// and numbers. Anything else is parsed in full. Read from the bytes, decoded as Latin-1: every
// character these patterns match is ASCII, and in UTF-8 an ASCII byte is always that character
// (the bytes of other characters are all >= 0x80), so a match in the bytes is one in the text.
const NUMBER_AT = Buffer.from('{"number":');
const SEQ_AT = '"schema_version":1,"sequence":{"number":';
const SEQ = /^"schema_version":1,"sequence":\{"number":(\d{1,16}),"stream":"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"\},"sizes":\{"request":(?:-?\d+|null),"response":(?:-?\d+|null)\},"span_id":(?:null|"[^"\\]*"),"time":"(\d{4}-\d\d-\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z","time_source":"/;
/** How far SEQ may reach (a longer span_id: parsed in full). */
const SEQ_CHARS = 440;

/** The last day read and its start (ms): the entries of a walk share a few days. */
let day = '';
let dayStart = NaN;

/**
 * The sequence and time of an entry's canonical JSON, without decoding or parsing it; undefined
 * when they are not where and as canonical JSON puts them (the entry is then parsed in full).
 */
export function entrySequence(value: Buffer): { stream: string; number: number; time: number } | undefined {
  // The first SEQ_AT, found by its `{` (a byte far rarer than the quote it starts with).
  let m: RegExpExecArray | null = null;
  for (let at = value.indexOf(NUMBER_AT); at >= 0; at = value.indexOf(NUMBER_AT, at + 1)) {
    const from = at + NUMBER_AT.length - SEQ_AT.length;
    const text = from >= 0 ? value.toString('latin1', from, from + SEQ_CHARS) : '';
    if (text.startsWith(SEQ_AT)) {
      m = SEQ.exec(text);
      break;
    }
  }
  if (!m) return undefined;
  const number = Number(m[1]);
  if (!Number.isSafeInteger(number) || number < 1) return undefined;
  // Date.parse of the whole time, computed as its day's start plus the time of day (each in range).
  const [h, min, s] = [Number(m[4]), Number(m[5]), Number(m[6])];
  if (h > 23 || min > 59 || s > 59) return undefined;
  if (m[3] !== day) {
    day = m[3]!;
    dayStart = Date.parse(`${day}T00:00:00.000Z`);
  }
  if (!Number.isFinite(dayStart)) return undefined;
  return { stream: m[2]!, number, time: dayStart + ((h * 60 + min) * 60 + s) * 1000 + Number(m[7]) };
}

/**
 * Adds n (a record of time `time`) to sorted, disjoint, non-adjacent ranges, which keep the times
 * of the records at their ends; false when it was already there.
 */
function insert(ranges: Run[], n: number, time: number | null): boolean {
  const lastR = ranges[ranges.length - 1];
  // The common case: the next number of the stream.
  if (lastR && n === lastR.to + 1) {
    lastR.to = n;
    lastR.toTime = time;
    return true;
  }
  if (!lastR || n > lastR.to + 1) {
    ranges.push({ from: n, to: n, fromTime: time, toTime: time });
    return true;
  }
  // Binary search for the first range ending at or after n - 1.
  let lo = 0;
  let hi = ranges.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ranges[mid]!.to < n - 1) lo = mid + 1;
    else hi = mid;
  }
  const r = ranges[lo]!;
  if (n >= r.from && n <= r.to) return false;
  if (n === r.to + 1) {
    r.to = n;
    r.toTime = time;
    const next = ranges[lo + 1];
    if (next && next.from === n + 1) {
      r.to = next.to;
      r.toTime = next.toTime;
      ranges.splice(lo + 1, 1);
    }
    return true;
  }
  if (n === r.from - 1) {
    r.from = n;
    r.fromTime = time;
    return true;
  }
  ranges.splice(lo, 0, { from: n, to: n, fromTime: time, toTime: time });
  return true;
}

/** The report as text lines (empty when nothing is missing or silent). */
export function coverageLines(r: CoverageReport): string[] {
  const lines: string[] = [];
  const span = (from: number, to: number) => (from === to ? `${from}` : `${from}\u2013${to}`);
  for (const g of r.gaps) {
    const what = g.recorded_loss ? `lost, recorded by the plugin (${g.recorded_loss.reason || 'no reason given'}; loss record ${g.recorded_loss.key})` : 'missing';
    lines.push(`node ${g.node}: sequence ${span(g.from, g.to)} ${what} (${g.count} record${g.count === 1 ? '' : 's'}; stream ${g.stream})${g.note ? `: ${g.note}` : ''}`);
  }
  for (const l of r.losses) {
    if (!l.problems.length) continue;
    lines.push(`loss record ${l.key} (node ${l.node}) explains no gap: ${l.problems.join('; ')}`);
  }
  for (const s of r.silences) {
    lines.push(`node ${s.node}: no entries and no heartbeat from ${s.from} to ${s.to} (${s.seconds} s; heartbeat every ${s.heartbeat_seconds} s)${s.note ? `: ${s.note}` : ''}`);
  }
  if (r.duplicates) lines.push(`${r.duplicates} sequence number(s) seen twice`);
  return lines;
}

/** The report for a command's text output: a newline, then a summary and each finding; '' without numbered records. */
export function coverageText(r: CoverageReport): string {
  // Records without numbers only (written before sequence numbers existed): nothing to say.
  if (!r.streams.length && !r.losses.length) return '';
  return ['', coverageSummary(r), ...coverageLines(r).map((l) => `  ${l}`)].join('\n');
}

/** The report for --json output: `gaps` on top (what an alert looks at), the rest under `coverage`. */
export function coverageJson(r: CoverageReport): { gaps: CoverageGap[]; coverage: Omit<CoverageReport, 'gaps'> } {
  const { gaps, ...rest } = r;
  return { gaps, coverage: rest };
}

/** One line saying what the coverage check covered. */
export function coverageSummary(r: CoverageReport): string {
  const nodes = new Set(r.streams.map((s) => s.node)).size;
  const explained = r.explained.reduce((n, e) => n + e.to - e.from + 1, 0);
  const recorded = r.gaps.filter((g) => g.recorded_loss).length;
  const lost = r.losses.reduce((n, l) => n + l.entries_lost, 0);
  return `coverage: ${r.streams.length} sequence stream(s) from ${nodes} node(s), ${r.gaps.length} gap(s)${recorded ? ` (${recorded} of them lost, recorded by the plugin)` : ''}, ${r.silences.length} silent period(s)` +
    (r.losses.length ? `, ${r.losses.length} loss record(s) counting ${lost} lost entr${lost === 1 ? 'y' : 'ies'}` : '') +
    (explained ? `, ${explained} number(s) reserved and unused by runs that ended uncleanly (explained)` : '') +
    (r.unnumbered ? `, ${r.unnumbered} entr${r.unnumbered === 1 ? 'y' : 'ies'} without a sequence number` : '');
}
