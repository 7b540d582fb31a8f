// The auditor's index keeps the entries' bytes in an append-only side file (decisions #40): rows
// point into it below the committed length stored with complete_tx. An update that fails, or a
// process killed mid-update, must leave rows, side file and state as the last commit left them.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { pathToFileURL } from 'node:url';
import { AuditIndex, entriesFile } from '../../plugin/workbench/audit-index.js';
import { filterCondition } from '../../plugin/workbench/filters.js';
import { parseEntry } from '../../plugin/workbench/index-row.js';

const dir = mkdtempSync(join(tmpdir(), 'kia-audit-index-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
const IDENT = { serverUuid: 'u', database: 'd', prefix: 'p' };

let n = 0;
/** A verified entry as the walk hands it over: key, bytes, and what the index reads from them. */
function entry(consumer: string, status = 200) {
  const id = `00000000-0000-7000-8000-${String(++n).padStart(12, '0')}`;
  const json = JSON.stringify({ id, time: new Date(Date.UTC(2026, 0, 1, 0, n)).toISOString(), who: { consumer: { username: consumer } }, outcome: { status, source: 'kong' }, sequence: { number: n, stream: 's' } });
  return { key: `p:entry:${id}`, bytes: Buffer.from(json), json };
}

function addAll(index: AuditIndex, txId: number, entries: Array<ReturnType<typeof entry>>) {
  for (const e of entries) {
    const { row, sequence } = parseEntry(e.key, e.json, txId);
    index.add(row, 1000 * txId, e.bytes, sequence);
  }
}

/** Rows as answered (with their JSON from the side file), the side file's length and the state. */
function content(file: string) {
  const index = AuditIndex.open(file, IDENT);
  try {
    const db = new DatabaseSync(file, { readOnly: true });
    const committed = (db.prepare("SELECT value FROM meta WHERE name = 'entries_bytes'").get() as { value: number } | undefined)?.value ?? 0;
    // The coverage state (records per stream, with the numbers' runs) saved with the rows.
    const coverage = (db.prepare('SELECT json FROM coverage_state').get() as { json: string } | undefined)?.json ?? null;
    db.close();
    return { rows: [...index.query(filterCondition({}))].map((r) => [r.audit_id, r.json]), sideFile: statSync(entriesFile(file)).size, committed, coverage, state: index.state() };
  } finally {
    index.close();
  }
}

test('a failed update truncates the side file back to its committed length and leaves rows and state as they were', (t) => {
  const file = join(dir, 'fail.index.sqlite');
  const first = [entry('alice'), entry('bob')];
  const index = AuditIndex.open(file, IDENT);
  index.begin();
  addAll(index, 1, first);
  index.commit(1, '2026-01-01T00:00:00.000Z', 2);
  const before = content(file);
  t.deepEqual(before.rows, first.map((e) => [e.key.slice(8), e.json]));
  t.is(before.sideFile, first.reduce((s, e) => s + e.bytes.length, 0));
  t.is(before.committed, before.sideFile);
  t.like(JSON.parse(before.coverage!), { streams: [{ stream: 's', records: 2, ranges: [{ from: 1, to: 2 }] }] });

  // An update writes its entries' bytes (flushed to the side file), then fails: rolled back.
  index.begin();
  addAll(index, 2, [entry('carol'), entry('alice', 401)]);
  index.flush();
  t.true(statSync(entriesFile(file)).size > before.sideFile, 'the update wrote to the side file');
  index.rollback();
  t.deepEqual(content(file), before);

  // The next update appends right after the committed bytes, and its rows read back their own.
  const next = [entry('dave')];
  index.begin();
  addAll(index, 2, next);
  index.commit(2, '2026-01-01T00:01:00.000Z', 1);
  index.close();
  const after = content(file);
  t.deepEqual(after.rows, [...first, ...next].map((e) => [e.key.slice(8), e.json]));
  t.is(after.sideFile, before.sideFile + next[0]!.bytes.length);
  t.is(after.state.txId, 2);
});

test('a process killed mid-update leaves the committed index; the next update drops the bytes no row points at', (t) => {
  const file = join(dir, 'kill.index.sqlite');
  const first = [entry('alice'), entry('bob')];
  const index = AuditIndex.open(file, IDENT);
  index.begin();
  addAll(index, 1, first);
  index.commit(1, '2026-01-01T00:00:00.000Z', 2);
  index.close();
  const before = content(file);

  // A writer that appends and flushes, then dies before its commit (SIGKILL: no cleanup at all).
  const mod = (p: string) => pathToFileURL(join(import.meta.dirname, p)).href;
  const script = `
    const { AuditIndex } = await import(${JSON.stringify(mod('../../plugin/workbench/audit-index.js'))});
    const { parseEntry } = await import(${JSON.stringify(mod('../../plugin/workbench/index-row.js'))});
    const index = AuditIndex.open(${JSON.stringify(file)}, ${JSON.stringify(IDENT)});
    index.begin();
    for (let i = 0; i < 50; i++) {
      const json = JSON.stringify({ id: 'x' + i, time: '2026-01-02T00:00:00Z', outcome: { status: 500 } });
      index.add(parseEntry('p:entry:x' + i, json, 2).row, 2000, Buffer.from(json), null);
    }
    index.flush();
    process.kill(process.pid, 'SIGKILL');`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  t.is(r.signal, 'SIGKILL', r.stderr);
  t.true(statSync(entriesFile(file)).size > before.sideFile, 'the killed update left bytes past the committed length');

  // Searches answer the committed rows only; nothing points past the committed length.
  const opened = content(file);
  t.deepEqual({ ...opened, sideFile: before.sideFile }, before);

  // The next update (holding the write lock) truncates the leftovers, then appends after them.
  const next = [entry('carol')];
  const again = AuditIndex.open(file, IDENT);
  again.begin();
  t.is(statSync(entriesFile(file)).size, before.sideFile);
  addAll(again, 2, next);
  again.commit(2, '2026-01-01T00:01:00.000Z', 1);
  again.close();
  const after = content(file);
  t.deepEqual(after.rows, [...first, ...next].map((e) => [e.key.slice(8), e.json]));
  t.is(after.sideFile, after.committed);
  t.like(after.state, { txId: 2, entries: 3 });
});

test('a side file shorter than its committed length (lost, or cut) makes the index rebuild from tx 1', (t) => {
  const file = join(dir, 'short.index.sqlite');
  const index = AuditIndex.open(file, IDENT);
  index.begin();
  addAll(index, 1, [entry('alice'), entry('bob')]);
  index.commit(1, '2026-01-01T00:00:00.000Z', 2);
  index.close();
  rmSync(entriesFile(file));
  appendFileSync(entriesFile(file), '{}');
  const after = content(file);
  t.deepEqual(after.rows, []);
  t.like(after.state, { txId: 0, entries: 0 });
});

test('--consumer matches id, username or custom id through the consumers table; the timeline counts Kong\'s own 401/403', (t) => {
  const file = join(dir, 'consumers.index.sqlite');
  const index = AuditIndex.open(file, IDENT);
  const mk = (consumer: Record<string, string>, status: number, source: string) => {
    const id = `00000000-0000-7000-8000-${String(++n).padStart(12, '0')}`;
    const json = JSON.stringify({ id, time: '2026-01-01T00:00:00Z', who: { consumer }, outcome: { status, source } });
    return { key: `p:entry:${id}`, bytes: Buffer.from(json), json };
  };
  index.begin();
  addAll(index, 1, [
    mk({ id: 'c-1', username: 'alice' }, 200, 'upstream'),
    mk({ id: 'c-1', username: 'alice' }, 401, 'kong'),
    mk({ id: 'c-2', custom_id: 'alice' }, 403, 'upstream'),
    mk({ id: 'c-3', username: 'bob' }, 403, 'kong'),
  ]);
  index.commit(1, '2026-01-01T00:00:00.000Z', 4);
  try {
    const who = (consumer: string) => [...index.query(filterCondition({ consumer }))].map((r) => [r.consumer_id, r.status]);
    t.deepEqual(who('alice'), [['c-1', 200], ['c-1', 401], ['c-2', 403]]);
    t.deepEqual(who('c-3'), [['c-3', 403]]);
    t.deepEqual(who('nobody'), []);
    t.is(index.count(filterCondition({ consumer: 'alice' })), 3);
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    t.like(index.buckets(filterCondition({}), t0, t0 + 60_000, 60_000), [{ bucket: 0, total: 4, c4xx: 3, kong: 2 }]);
  } finally {
    index.close();
  }
});

test('large updates sync the side file in the background; closing while a sync runs loses nothing committed', async (t) => {
  const file = join(dir, 'large.index.sqlite');
  const big = (i: number) => {
    const id = `00000000-0000-7000-8000-${String(++n).padStart(12, '0')}`;
    const json = JSON.stringify({ id, time: '2026-01-01T00:00:00Z', pad: String(i).repeat(1 << 20) });
    return { key: `p:entry:${id}`, bytes: Buffer.from(json), json };
  };
  const index = AuditIndex.open(file, IDENT);
  index.begin();
  const first = Array.from({ length: 20 }, (_, i) => big(i % 10));
  for (const e of first) {
    addAll(index, 1, [e]);
    await new Promise((r) => setImmediate(r)); // the background sync's answer comes on the loop
  }
  index.commit(1, '2026-01-01T00:00:00.000Z', first.length);
  // Another update past the sync threshold, closed (rolled back) without waiting for its sync.
  index.begin();
  addAll(index, 2, Array.from({ length: 10 }, (_, i) => big(i)));
  index.flush();
  index.close();
  const after = content(file);
  t.is(after.rows.length, first.length);
  t.true(after.rows.every(([id, json], i) => id === first[i]!.key.slice(8) && json === first[i]!.json));
  t.is(after.sideFile, after.committed);
  t.is(after.state.txId, 1);
});

test('a coverage state that cannot be read fails search and the next update with the way out, and changes nothing', (t) => {
  const file = join(dir, 'coverage-state.index.sqlite');
  const index = AuditIndex.open(file, IDENT);
  index.begin();
  addAll(index, 1, [entry('alice')]);
  index.commit(1, '2026-01-01T00:00:00.000Z', 1);
  index.close();
  const db = new DatabaseSync(file);
  db.prepare('UPDATE coverage_state SET json = ? WHERE id = 1').run('{"version":1,"streams":');
  db.close();
  const before = content(file);
  const broken = AuditIndex.open(file, IDENT);
  try {
    const way = { message: /the index's coverage state cannot be read \(.+\): delete the index to rebuild it/ };
    t.throws(() => broken.coverage.report(undefined, undefined), way);
    t.throws(() => broken.begin(), way);
  } finally {
    broken.close();
  }
  t.deepEqual(content(file), before);
});

test('search\'s coverage counts the entries without a sequence number, in all history and in a window', (t) => {
  const file = join(dir, 'unnumbered.index.sqlite');
  const numbered = [entry('alice'), entry('bob'), entry('carol')];
  // Written before numbering existed, or by a writer that numbers nothing: no gap can show them missing.
  const bare = (minute: number | null) => {
    const id = `00000000-0000-7000-9000-${String(++n).padStart(12, '0')}`;
    const json = JSON.stringify({ id, ...(minute === null ? {} : { time: new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString() }) });
    return { key: `p:entry:${id}`, bytes: Buffer.from(json), json };
  };
  const minute = (e: { json: string }) => new Date(JSON.parse(e.json).time as string).getUTCMinutes();
  const early = bare(minute(numbered[0]!));
  const late = bare(minute(numbered[2]!) + 10);
  const timeless = bare(null);
  const index = AuditIndex.open(file, IDENT);
  try {
    index.begin();
    addAll(index, 1, [early, ...numbered, late, timeless]);
    index.commit(1, '2026-01-01T00:00:00.000Z', 6);
    const at = (m: number) => Date.UTC(2026, 0, 1, 0, m);
    t.is(index.coverage.report(undefined, undefined).unnumbered, 3);
    // A record of unknown time counts as in every window, as for numbers (coverage.ts).
    t.is(index.coverage.report(at(minute(late)), undefined).unnumbered, 2);
    t.is(index.coverage.report(at(minute(early)), at(minute(early) + 1)).unnumbered, 2);
    t.is(index.coverage.report(at(minute(numbered[1]!)), at(minute(numbered[2]!) + 1)).unnumbered, 1);
  } finally {
    index.close();
  }
});
