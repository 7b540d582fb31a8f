// Coverage of a verified range (docs/decisions.md #30, #31): from the sequence numbers of the
// audit and lifecycle entries a walk verified, per node stream, the numbers missing (gaps), the
// numbers the plugin itself explained (reserved by a run that ended uncleanly and never used),
// and the periods with neither entries nor a heartbeat (silences). Fed record by record in the
// walk's order; memory grows with the number of gaps, not of entries.
import { parseKey } from '../store/key-layout.js';

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

export interface CoverageGap {
  node: string;
  stream: string;
  from: number;
  to: number;
  count: number;
  /** Why it is reported although the plugin said something about it (e.g. spool damage). */
  note: string | null;
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

interface StreamState {
  node: string;
  stream: string;
  ranges: Range[];
  records: number;
  duplicates: number;
  starts: Start[];
  cleanStops: number;
  heartbeatSeconds: number;
  lastTime: number | null;
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

export class CoverageCollector {
  private readonly streams = new Map<string, StreamState>();
  private unnumbered = 0;

  /** Callbacks for AuditReader.verifyAll: its audit entries and lifecycle entries, as verified. */
  walkHooks(): { onEntries: (tx: unknown, records: ReadonlyArray<{ key: Buffer; value: Buffer }>) => void; onLifecycle: (tx: unknown, records: ReadonlyArray<{ key: Buffer; value: Buffer }>) => void } {
    const add = (_tx: unknown, records: ReadonlyArray<{ key: Buffer; value: Buffer }>) => {
      for (const r of records) this.add(r.key, r.value);
    };
    return { onEntries: add, onLifecycle: add };
  }

  /** A stream and the node it belongs to, before its numbers are added (the index's reads). */
  declare(stream: string, node: string | null): void {
    this.stream(stream, node);
  }

  /** The heartbeat a stream announced before the numbers added (a window that starts mid-run). */
  heartbeat(stream: string, seconds: number): void {
    this.stream(stream, null).heartbeatSeconds = seconds;
  }

  /** An audit entry's number and time, already read (the index's coverage table). */
  addNumber(stream: string, number: number, time: number | null): void {
    this.note(this.stream(stream, null), number, time, undefined, undefined);
  }

  private stream(stream: string, node: string | null): StreamState {
    let s = this.streams.get(stream);
    if (!s) {
      s = { node: node ?? '(unnamed node)', stream, ranges: [], records: 0, duplicates: 0, starts: [], cleanStops: 0, heartbeatSeconds: 0, lastTime: null, stoppedCleanly: false, silences: [] };
      this.streams.set(stream, s);
    }
    if (node && s.node === '(unnamed node)') s.node = node;
    return s;
  }

  /**
   * One verified record: an audit entry or a lifecycle entry (key and value as written); `key`
   * may be just the kind ('entry', 'lifecycle') when the key is not at hand.
   */
  add(key: Buffer | string, value: Buffer | string): void {
    const kind = key === 'entry' || key === 'lifecycle' ? key : parseKey(key)?.kind;
    if (kind !== 'entry' && kind !== 'lifecycle') return;
    const text = typeof value === 'string' ? value : value.toString('utf8');
    // An entry of a known stream: its number and time read without parsing the whole entry.
    if (kind === 'entry') {
      const fast = entrySequence(text);
      const s = fast && this.streams.get(fast.stream);
      if (s) return this.note(s, fast.number, fast.time, undefined, undefined);
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
    if (!insert(s.ranges, number)) s.duplicates++;
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
  }

  /** `fromStart`: the walk began at tx 1, so every stream is checked from number 1. */
  report(fromStart: boolean): CoverageReport {
    const out: CoverageReport = { from_start: fromStart, streams: [], gaps: [], explained: [], silences: [], unnumbered: this.unnumbered, duplicates: 0 };
    for (const s of this.streams.values()) {
      if (!s.ranges.length) continue;
      const first = s.ranges[0]!.from;
      const last = s.ranges[s.ranges.length - 1]!.to;
      out.streams.push({ node: s.node, stream: s.stream, first, last, records: s.records, starts: s.starts.length, clean_stops: s.cleanStops });
      out.duplicates += s.duplicates;
      out.silences.push(...s.silences);
      const holes: Range[] = [];
      if (fromStart && first > 1) holes.push({ from: 1, to: first - 1 });
      for (let i = 1; i < s.ranges.length; i++) holes.push({ from: s.ranges[i - 1]!.to + 1, to: s.ranges[i]!.from - 1 });
      for (const h of holes) {
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
        });
      }
    }
    return out;
  }
}

// In an entry's canonical JSON (members in order, decisions #14) the top-level sequence comes
// right after schema_version, and time after span_id. Nothing before them can hold this text:
// string values escape their quotes, and no earlier member holds an object with these keys and
// numbers. Anything else is parsed in full.
const SEQ_AT = '"schema_version":1,"sequence":{"number":';
const SEQ = /^(\d{1,16}),"stream":"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"\}/;
const TIME = /,"time":"([^"]{10,40})","time_source":/;

/** The sequence and time of an entry's canonical JSON, without parsing it; undefined when not found. */
export function entrySequence(text: string): { stream: string; number: number; time: number | null } | undefined {
  const at = text.indexOf(SEQ_AT);
  if (at < 0) return undefined;
  const m = SEQ.exec(text.slice(at + SEQ_AT.length, at + SEQ_AT.length + 80));
  if (!m) return undefined;
  const number = Number(m[1]);
  if (!Number.isSafeInteger(number) || number < 1) return undefined;
  TIME.lastIndex = 0;
  const t = TIME.exec(text.slice(at, at + 1024));
  const ms = t ? Date.parse(t[1]!) : NaN;
  return { stream: m[2]!, number, time: Number.isFinite(ms) ? ms : null };
}

/** Adds n to sorted, disjoint, non-adjacent ranges; false when it was already there. */
function insert(ranges: Range[], n: number): boolean {
  const lastR = ranges[ranges.length - 1];
  // The common case: the next number of the stream.
  if (lastR && n === lastR.to + 1) {
    lastR.to = n;
    return true;
  }
  if (!lastR || n > lastR.to + 1) {
    ranges.push({ from: n, to: n });
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
    const next = ranges[lo + 1];
    if (next && next.from === n + 1) {
      r.to = next.to;
      ranges.splice(lo + 1, 1);
    }
    return true;
  }
  if (n === r.from - 1) {
    r.from = n;
    return true;
  }
  ranges.splice(lo, 0, { from: n, to: n });
  return true;
}

/** The report as text lines (empty when nothing is missing or silent). */
export function coverageLines(r: CoverageReport): string[] {
  const lines: string[] = [];
  for (const g of r.gaps) {
    lines.push(`node ${g.node}: sequence ${g.from === g.to ? g.from : `${g.from}\u2013${g.to}`} missing (${g.count} record${g.count === 1 ? '' : 's'}; stream ${g.stream})${g.note ? `: ${g.note}` : ''}`);
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
  if (!r.streams.length) return '';
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
  return `coverage: ${r.streams.length} sequence stream(s) from ${nodes} node(s), ${r.gaps.length} gap(s), ${r.silences.length} silent period(s)` +
    (explained ? `, ${explained} number(s) reserved and unused by runs that ended uncleanly (explained)` : '') +
    (r.unnumbered ? `, ${r.unnumbered} entr${r.unnumbered === 1 ? 'y' : 'ies'} without a sequence number` : '');
}
