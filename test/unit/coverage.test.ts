// Coverage reports from sequence numbers and lifecycle entries (plugin/workbench/coverage.ts):
// gaps, gaps the plugin explained, silent periods, on records built as the plugin builds them.
import test from 'ava';
import fc from 'fast-check';
import { buildAuditEntry } from '../../plugin/capture/build-entry.js';
import { encodeEntry } from '../../plugin/capture/encode.js';
import { isCanonicalOrder } from '../../plugin/capture/canonical-json.js';
import { compilePrivacy } from '../../plugin/capture/privacy-policy.js';
import { auditId } from '../../plugin/capture/audit-id.js';
import { encodeLifecycle, type LifecycleEvent } from '../../plugin/pipeline/lifecycle.js';
import { encodeLossRecord, noteLoss, type LossWindow } from '../../plugin/pipeline/loss-record.js';
import { CoverageCollector, coverageLines, coverageSummary, entrySequence, type CoverageState } from '../../plugin/workbench/coverage.js';

const STREAM = '0b9f2d2e-6c1a-4a3e-9d55-2f7f3c1e8a01';
const OTHER = '7d3c1e8a-0b9f-4a3e-9d55-2f7f3c1e8a02';
const T0 = Date.parse('2026-12-01T10:00:00.000Z');
const privacy = compilePrivacy(undefined);

function entry(number: number, at: number, stream = STREAM, node = 'kong-2') {
  const log = { started_at: at, request: { method: 'GET', uri: '/x', id: 'r' }, response: { status: 200 } };
  const e = buildAuditEntry(log as never, { id: auditId(at), now: at, nodeId: node, hostname: 'h', sequence: { number, stream } }, [], privacy);
  return encodeEntry('audit', e);
}

function life(event: LifecycleEvent, number: number, at: number, details: Record<string, unknown> = {}, stream = STREAM) {
  return encodeLifecycle('audit', event, { number, stream }, { nodeId: 'kong-2', hostname: 'h' }, details, at);
}

test('the fast path reads what JSON.parse reads, from the canonical JSON', (t) => {
  const r = entry(1234, T0);
  const json = JSON.parse(r.value.toString()) as { sequence: unknown; time: string };
  t.true(isCanonicalOrder(json), 'a numbered entry keeps canonicalJson\'s one-call path');
  t.deepEqual(json.sequence, { number: 1234, stream: STREAM });
  t.deepEqual(entrySequence(r.value), { stream: STREAM, number: 1234, time: T0 });
  // An entry without a number (or of another layout) is parsed in full.
  t.is(entrySequence(Buffer.from(r.value.toString().replace('"sequence":{"number":1234,"stream":"' + STREAM + '"}', '"sequence":null'))), undefined);
});

test('the fast path answers only what the whole entry says, or nothing (fast-check)', (t) => {
  const UUIDS = [STREAM, OTHER, STREAM.toUpperCase()];
  const whole = (text: string) => {
    const j = JSON.parse(text) as { sequence?: { number?: unknown; stream?: unknown } | null; time?: unknown };
    const n = j.sequence?.number;
    const s = j.sequence?.stream;
    if (typeof s !== 'string' || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(s) || !Number.isSafeInteger(n) || (n as number) < 1) return undefined;
    const ms = typeof j.time === 'string' ? Date.parse(j.time) : NaN;
    return { stream: s, number: n as number, time: Number.isFinite(ms) ? ms : null };
  };
  fc.assert(
    fc.property(
      fc.record({
        number: fc.oneof(fc.integer({ min: 1, max: 2 ** 40 }), fc.constantFrom(0, -1, 1.5, 2 ** 53, 1e300)),
        stream: fc.constantFrom(...UUIDS),
        at: fc.integer({ min: 0, max: 4_102_444_800_000 }),
        time: fc.option(
          fc.oneof(
            fc.string(),
            fc.constantFrom(
              '2026-12-01T10:00:00Z', '2026-12-01T10:00:00.000000000000000000000000000000Z', 'x'.repeat(50), '2026-02-30T10:00:00.000Z', '2026-02-29T10:00:00.000Z',
              '2024-02-29T23:59:59.999Z', '2026-12-01T24:00:00.000Z', '2026-12-01T23:60:00.000Z', '2026-12-01T23:59:60.000Z', '0000-01-01T00:00:00.000Z',
              '2026-13-01T00:00:00.000Z', '2026-00-10T00:00:00.000Z', '2026-12-00T00:00:00.000Z', '2026-12-01T10:00:00.000+01:00', '+010000-01-01T00:00:00.000Z',
            ),
          ),
          { nil: undefined },
        ),
        spanId: fc.option(fc.oneof(fc.string(), fc.string({ minLength: 1000, maxLength: 1200 })), { nil: undefined }),
        dropTimeSource: fc.boolean(),
      }),
      (m) => {
        const e = JSON.parse(entry(1, T0).value.toString()) as Record<string, unknown>;
        e.sequence = { number: m.number, stream: m.stream };
        e.time = m.time ?? new Date(m.at).toISOString();
        if (m.spanId !== undefined) e.span_id = m.spanId;
        if (m.dropTimeSource) delete e.time_source;
        const text = JSON.stringify(e);
        const fast = entrySequence(Buffer.from(text));
        if (fast !== undefined) t.deepEqual(fast, whole(text), text);
        // An entry as the plugin writes it is always read on the fast path.
        else t.false(m.time === undefined && m.spanId === undefined && !m.dropTimeSource && whole(text) !== undefined, text);
      },
    ),
    { numRuns: 2000 },
  );
});

test('every entry the verified walk hands over counts, whatever its id (as the index counts it)', (t) => {
  const c = new CoverageCollector();
  const { onEntries } = c.walkHooks();
  const odd = { key: Buffer.from('audit:entry:not-an-audit-id'), value: entry(2, T0 + 1000).value };
  const bare = { key: Buffer.from('audit:entry:a:b'), value: Buffer.from('{"id":"x"}') };
  onEntries(null, [entry(1, T0), odd, entry(3, T0 + 2000), bare]);
  const report = c.report(true);
  t.deepEqual(report.gaps, []);
  t.is(report.streams[0]!.records, 3);
  t.is(c.state().unnumbered, 1);
});

test('contiguous numbers: no gap; a hole: one gap per node with its range', (t) => {
  const c = new CoverageCollector();
  c.add(life('started', 1, T0).key, life('started', 1, T0, { previous_run: null, heartbeat_seconds: 0, spool: { missing: 0 } }).value);
  for (const n of [2, 3, 4, 8, 5, 9]) {
    const r = entry(n, T0 + n * 1000);
    c.add(r.key, r.value);
  }
  const report = c.report(true);
  t.deepEqual(report.gaps.map((g) => [g.node, g.from, g.to, g.count]), [['kong-2', 6, 7, 2]]);
  t.deepEqual(coverageLines(report), [`node kong-2: sequence 6\u20137 missing (2 records; stream ${STREAM})`]);
  t.is(report.streams[0]!.records, 7);
});

test('from tx 1 every stream starts at 1; a later range is checked from its first number', (t) => {
  const c = new CoverageCollector();
  for (const n of [1001, 1002, 1004]) {
    const r = entry(n, T0 + n);
    c.add(r.key, r.value);
  }
  t.deepEqual(c.report(true).gaps.map((g) => [g.from, g.to]), [[1, 1000], [1003, 1003]]);
  t.deepEqual(c.report(false).gaps.map((g) => [g.from, g.to]), [[1003, 1003]]);
});

test('numbers reserved by a run that crashed are explained by the next start, unless the spool lost records', (t) => {
  for (const missing of [0, 3]) {
    const c = new CoverageCollector();
    const add = (r: { key: Buffer; value: Buffer }) => c.add(r.key, r.value);
    add(life('started', 1, T0, { previous_run: null, heartbeat_seconds: 0, spool: { missing: 0 } }));
    for (let n = 2; n <= 10; n++) add(entry(n, T0 + n));
    add(life('started', 4097, T0 + 60_000, { previous_run: { ended: 'unclean', last_number: 4096 }, heartbeat_seconds: 0, spool: { missing } }));
    add(entry(4098, T0 + 61_000));
    const r = c.report(true);
    if (missing === 0) {
      t.deepEqual(r.gaps, []);
      t.deepEqual(r.explained.map((e) => [e.from, e.to]), [[11, 4096]]);
    } else {
      t.deepEqual(r.gaps.map((g) => [g.from, g.to, g.note]), [[11, 4096, 'the spool reported 3 record(s) missing when the next run started']]);
    }
  }
});

test('a clean restart continues the numbers: nothing to explain; numbers seen twice are counted', (t) => {
  const c = new CoverageCollector();
  const add = (r: { key: Buffer; value: Buffer }) => c.add(r.key, r.value);
  add(life('started', 1, T0, { previous_run: null, heartbeat_seconds: 0, spool: { missing: 0 } }));
  add(entry(2, T0 + 1));
  add(life('stopping', 3, T0 + 2));
  add(life('started', 4, T0 + 3, { previous_run: { ended: 'clean', last_number: 3 }, heartbeat_seconds: 0, spool: { missing: 0 } }));
  add(entry(5, T0 + 4));
  add(entry(5, T0 + 4));
  const r = c.report(true);
  t.deepEqual(r.gaps, []);
  t.deepEqual(r.explained, []);
  t.is(r.duplicates, 1);
  t.deepEqual(r.streams.map((s) => [s.first, s.last, s.starts, s.clean_stops]), [[1, 5, 2, 1]]);
});

test('silent periods: longer than twice the heartbeat with no record; a clean stop explains its downtime', (t) => {
  const c = new CoverageCollector();
  const add = (r: { key: Buffer; value: Buffer }) => c.add(r.key, r.value);
  const hb = 60;
  add(life('started', 1, T0, { previous_run: null, heartbeat_seconds: hb, spool: { missing: 0 } }));
  add(life('heartbeat', 2, T0 + 60_000));
  add(entry(3, T0 + 90_000));
  // 10 minutes of nothing: a silence.
  add(life('heartbeat', 4, T0 + 690_000));
  add(life('stopping', 5, T0 + 700_000));
  // Down for an hour after a clean stop: not a silence.
  add(life('started', 6, T0 + 4_300_000, { previous_run: { ended: 'clean', last_number: 5 }, heartbeat_seconds: hb, spool: { missing: 0 } }));
  add(entry(7, T0 + 4_310_000));
  // Gone without a stop, back 20 minutes later: a silence that says so.
  add(life('started', 4103, T0 + 5_510_000, { previous_run: { ended: 'unclean', last_number: 4102 }, heartbeat_seconds: hb, spool: { missing: 0 } }));
  // Another node's stream is separate.
  c.add(entry(1, T0 + 5_000_000, OTHER, 'kong-3').key, entry(1, T0 + 5_000_000, OTHER, 'kong-3').value);
  const r = c.report(true);
  t.deepEqual(r.silences.map((s) => [s.node, s.from, s.to, s.seconds, s.note]), [
    ['kong-2', new Date(T0 + 90_000).toISOString(), new Date(T0 + 690_000).toISOString(), 600, null],
    ['kong-2', new Date(T0 + 4_310_000).toISOString(), new Date(T0 + 5_510_000).toISOString(), 1200, 'the run before ended without a stopping entry (crash or kill)'],
  ]);
  t.deepEqual(r.gaps, []);
  t.deepEqual(r.explained.map((e) => [e.from, e.to]), [[8, 4102]]);
  t.is(r.streams.length, 2);
});

test('entries without a number are counted, not gaps', (t) => {
  const c = new CoverageCollector();
  const log = { started_at: T0, request: { method: 'GET', uri: '/x' }, response: { status: 200 } };
  const r = encodeEntry('audit', buildAuditEntry(log as never, { id: auditId(T0), now: T0, nodeId: null, hostname: 'h' }, [], privacy));
  c.add(r.key, r.value);
  c.add('audit:loss:x', '{}');
  const rep = c.report(true);
  t.is(rep.unnumbered, 1);
  t.deepEqual(rep.gaps, []);
});

/** A loss record as the plugin writes it, naming `numbers` of `stream` (null: an entry without one). */
function lossRecord(numbers: Array<number | null>, stream = STREAM) {
  let w: LossWindow | undefined;
  for (const n of numbers) w = noteLoss(w, 'audit', 'kong-2', T0, 'spool: ENOSPC; immudb: down', n === null ? null : { number: n, stream });
  return encodeLossRecord(w!, T0 + 60_000);
}

function numbered(c: CoverageCollector, numbers: number[]) {
  c.add(life('started', 1, T0).key, life('started', 1, T0, { previous_run: null, heartbeat_seconds: 0, spool: { missing: 0 } }).value);
  for (const n of numbers) {
    const r = entry(n, T0 + n * 1000);
    c.add(r.key, r.value);
  }
}

test('a gap a loss record names is reported as a recorded loss; the rest of the gap stays unexplained', (t) => {
  const c = new CoverageCollector();
  // 5..9 and 14..15 missing; the plugin recorded 6..8 and 14..15 lost (and one without a number).
  const loss = lossRecord([6, 7, 8, 14, 15, null]);
  c.add(loss.key, loss.value);
  numbered(c, [2, 3, 4, 10, 11, 12, 13, 16]);
  const r = c.report(true);
  const recorded = { key: loss.key.toString(), reason: 'spool: ENOSPC; immudb: down', entries_lost: 6, recorded_at: new Date(T0 + 60_000).toISOString() };
  t.deepEqual(r.gaps.map((g) => [g.from, g.to, g.recorded_loss]), [[5, 5, null], [6, 8, recorded], [9, 9, null], [14, 15, recorded]]);
  t.like(r.losses[0], { stream: STREAM, ranges: [[6, 8], [14, 15]], unlisted: 1, problems: [] });
  const lines = coverageLines(r);
  t.is(lines[0], `node kong-2: sequence 5 missing (1 record; stream ${STREAM})`);
  t.is(lines[1], `node kong-2: sequence 6\u20138 lost, recorded by the plugin (spool: ENOSPC; immudb: down; loss record ${loss.key.toString()}) (3 records; stream ${STREAM})`);
  t.regex(coverageSummary(r), /4 gap\(s\) \(2 of them lost, recorded by the plugin\).*1 loss record\(s\) counting 6 lost entries/);
});

test('a loss record whose count disagrees with its numbers, or that names numbers in the log, explains nothing', (t) => {
  const c = new CoverageCollector();
  const good = lossRecord([5]);
  const json = JSON.parse(lossRecord([6, 7]).value.toString()) as Record<string, unknown>;
  c.add('audit:loss:01a20d28-919e-7687-b322-9d16dfdc55a8', JSON.stringify({ ...json, entries_lost: 5 }));
  const inLog = lossRecord([3, 8]);
  c.add(inLog.key, inLog.value);
  c.add(good.key, good.value);
  // Another stream's loss record says nothing about this one.
  const other = lossRecord([7], OTHER);
  c.add(other.key, other.value);
  numbered(c, [2, 3, 4, 9]);
  const r = c.report(true);
  t.deepEqual(r.gaps.map((g) => [g.from, g.to, g.recorded_loss?.key ?? null]), [[5, 5, good.key.toString()], [6, 8, null]]);
  t.deepEqual(r.losses.map((l) => l.problems.length), [1, 1, 0, 0]);
  t.regex(r.losses[0]!.problems[0]!, /counts 5 entries lost, but names 2 number\(s\) and 0 unlisted/);
  t.regex(r.losses[1]!.problems[0]!, /names number\(s\) that are in the log: 3/);
  t.true(coverageLines(r).some((l) => /^loss record audit:loss:01a20d28-.* \(node kong-2\) explains no gap: it counts 5/.test(l)));
});

test('a loss record that names numbers after the last one in the range is listed, not a problem', (t) => {
  const c = new CoverageCollector();
  const loss = lossRecord([5, 6]);
  c.add(loss.key, loss.value);
  numbered(c, [2, 3, 4]);
  const r = c.report(true);
  t.deepEqual(r.gaps, []);
  t.like(r.losses[0], { ranges: [[5, 6]], problems: [] });
  t.regex(coverageSummary(r), /1 loss record\(s\) counting 2 lost entries/);
});

test('a saved state goes on as if nothing had been saved (the index keeps it between updates)', (t) => {
  // Records of two streams, numbers shuffled, times drifting, some numbers missing, a start with
  // a heartbeat, and a loss record: fed in one go, or saved at any point, restored and finished.
  const loss = lossRecord([40, 41]);
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 2, max: 60 }), { minLength: 1, maxLength: 40 }), fc.nat(), fc.nat(), (numbers, seed, cut) => {
      const records = [life('started', 1, T0, { previous_run: null, heartbeat_seconds: 60, spool: { missing: 0 } }), loss];
      numbers.forEach((n, i) => records.push(entry(n, T0 + n * 50_000 + ((seed + i * 7919) % 40_000), i % 3 ? STREAM : OTHER)));
      const whole = new CoverageCollector();
      for (const r of records) whole.add(r.key, r.value);
      const at = cut % (records.length + 1);
      const first = new CoverageCollector();
      for (const r of records.slice(0, at)) first.add(r.key, r.value);
      const saved = JSON.parse(JSON.stringify(first.state())) as CoverageState;
      const rest = CoverageCollector.restore(saved);
      for (const r of records.slice(at)) rest.add(r.key, r.value);
      t.deepEqual(rest.report(true), whole.report(true));
      const window = { since: T0 + 600_000, until: T0 + 1_800_000 };
      t.deepEqual(rest.report(true, window), whole.report(true, window));
    }),
  );
  t.throws(() => CoverageCollector.restore({ version: 2 } as never), { message: /not of version 1/ });
});

test('a window: the numbers missing between records whose times span part of it, and the silences over it', (t) => {
  const c = new CoverageCollector();
  c.add(life('started', 1, T0).key, life('started', 1, T0, { previous_run: null, heartbeat_seconds: 60, spool: { missing: 0 } }).value);
  // 1 (10:00), 2 (10:00:01), 3 (10:01), then 7 (10:20), 8 (10:20:00.001): 4-6 missing, silent 10:01-10:20.
  for (const [n, at] of [[2, T0 + 1000], [3, T0 + 60_000], [7, T0 + 1_200_000], [8, T0 + 1_200_001]] as const) {
    const r = entry(n, at);
    c.add(r.key, r.value);
  }
  const at = (iso: string) => Date.parse(`2026-12-01T${iso}Z`);
  const found = (since?: string, until?: string) => {
    const r = c.report(true, { since: since === undefined ? undefined : at(since), until: until === undefined ? undefined : at(until) });
    return { gaps: r.gaps.map((g) => [g.from, g.to]), silences: r.silences.map((s) => [s.from.slice(11, 19), s.to.slice(11, 19)]), streams: r.streams.length };
  };
  const both = { gaps: [[4, 6]], silences: [['10:01:00', '10:20:00']], streams: 1 };
  t.deepEqual(found('10:19:00'), both, 'a window that starts inside');
  t.deepEqual(found('10:00:30', '10:05:00'), both, 'one that ends inside');
  t.deepEqual(found('10:05:00', '10:10:00'), both, 'one wholly inside: no record of the node in it');
  t.deepEqual(found(undefined, '10:01:00'), { gaps: [], silences: [], streams: 1 }, 'one before the gap (its last record 10:01 is not in it)');
  t.deepEqual(found('10:21:00'), { gaps: [], silences: [], streams: 0 }, 'one after everything: the stream is not concerned');
  t.deepEqual(found(), both, 'no window');
  // Numbers below the first seen (from tx 1 they are missing) concern windows up to its time.
  const late = new CoverageCollector();
  const r = entry(5, T0 + 60_000);
  late.add(r.key, r.value);
  t.deepEqual(late.report(true, { until: T0 }).gaps.map((g) => [g.from, g.to]), [[1, 4]]);
  t.deepEqual(late.report(true, { since: T0 + 60_001 }).gaps, []);
});
