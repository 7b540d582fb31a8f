// The proposed hot-path replacements in bench/experiments/ give the same results as the code
// they would replace: canonical JSON equal to canonicalize's, UUIDv7s of the same form and
// order, and the one-pass verified-write check accepting exactly what verifyVerifiableSet
// accepts (same state) and refusing every tampered recording it refuses.
import test from 'ava';
import canonicalize from 'canonicalize';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { v7 as uuidv7 } from 'uuid';
import { buildAuditEntry } from '../../plugin/capture/build-entry.js';
import type { KongSerializedLog } from '../../plugin/capture/kong-log.js';
import type { KVMetadata, Tx, VerifiableEntry, VerifiableTx } from '../../plugin/store/immudb-types.js';
import { VerificationError, parseTxHeader, verifyListedEntries, verifyVerifiableSet, type TrustedState } from '../../plugin/store/proofs/index.js';
import { generateFixtures } from '../fixtures/serialized-logs.js';
import { canonicalJson, inCanonicalOrder, isCanonicalOrder } from '../../bench/experiments/canonical-json.js';
import { encodeEntry as encodeFast } from '../../bench/experiments/encode-fast.js';
import { encodeEntry as encodeCompact } from '../../bench/experiments/encode-compact.js';
import { encodeEntry } from '../../plugin/capture/encode.js';
import { v7 as fastV7 } from '../../bench/experiments/uuid7.js';
import { verifyVerifiableSet as verifyFast, verifyListedEntriesOnce } from '../../bench/experiments/verify-set-fast.js';

const entries = generateFixtures(300, { seed: 4242 }).map((f, i) =>
  buildAuditEntry(JSON.parse(f.json) as KongSerializedLog, { id: uuidv7(), now: 1_700_000_000_000 + i, nodeId: 'n1', hostname: 'h' }, i % 7 === 0 ? ['a problem'] : []));

test('canonicalJson equals canonicalize on realistic audit entries, both paths', (t) => {
  for (const e of entries) {
    t.is(canonicalJson(e), canonicalize(e));
    const ordered = inCanonicalOrder(e);
    t.true(isCanonicalOrder(ordered));
    t.is(canonicalJson(ordered), canonicalize(e));
  }
  t.false(isCanonicalOrder(entries[0]), 'build-entry does not emit keys in canonical order today');
});

test('canonicalJson equals canonicalize on awkward values', (t) => {
  const values: unknown[] = [
    { b: 1, a: [3, { d: null, c: 'x' }], '10': 1, '9': 2, é: 'é', '\u00e9\u0301': 1, A: true },
    { x: undefined, y: () => 1, z: [undefined, 1e21, 1e-7, -0, 0.1 + 0.2] },
    ['a', 'b\n"\\', '\u2028\u2029', '\u{1F600}', { '': 0 }],
    'plain', 42, null, true, [],
    { nested: { deeper: { deepest: { k2: 1, k1: 2 } } } },
    { date: new Date(0) },
  ];
  for (const v of values) t.is(canonicalJson(v), canonicalize(v), JSON.stringify(v));
  for (const bad of [{ a: NaN }, { a: Infinity }, ['\ud800'], { '\udc00': 1 }]) {
    t.throws(() => canonicalize(bad));
    t.throws(() => canonicalJson(bad));
  }
});

test('encode-fast and encode-compact give the same records as plugin/capture/encode.ts', (t) => {
  for (const e of entries) {
    const a = encodeEntry('audit', e);
    for (const b of [encodeFast('audit', e), encodeCompact('audit', e)]) {
      t.is(b.id, a.id);
      t.true(b.key.equals(a.key));
      t.true(b.value.equals(a.value));
      // one exact-size allocation of its own, outside the shared Buffer pool
      t.is(b.key.buffer, b.value.buffer);
      t.is(b.key.buffer.byteLength, a.key.length + a.value.length);
    }
  }
});

test('pooled UUIDv7s have the form, version, variant and time of uuid v7 and increase strictly', (t) => {
  const re = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  let prev = '';
  const seen = new Set<string>();
  for (let i = 0; i < 20_000; i++) {
    const before = Date.now();
    const id = fastV7();
    t.true(re.test(id), id);
    t.true(id > prev, `${id} after ${prev}`);
    seen.add(id);
    prev = id;
    const ms = parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
    if (ms < before || ms > Date.now() + 1) t.fail(`timestamp ${ms} not around ${before}`);
  }
  t.is(seen.size, 20_000);
});

// --- one-pass verified-write check vs verifyVerifiableSet on recorded immudb answers ---------

const fixtureDir = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/proofs');
function fromJson(v: unknown): unknown {
  if (typeof v === 'string' && v.startsWith('hex:')) return Buffer.from(v.slice(4), 'hex');
  if (Array.isArray(v)) return v.map(fromJson);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fromJson(x)]));
  return v;
}
function clone<T>(v: T): T {
  if (Buffer.isBuffer(v)) return Buffer.from(v) as T;
  if (Array.isArray(v)) return v.map(clone) as T;
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, clone(x)])) as T;
  return v;
}
interface SetCase {
  name: string;
  kind: string;
  request: { kvs?: Array<{ key: Buffer; value: Buffer; metadata?: KVMetadata | null }> };
  trusted: TrustedState | null;
  response: VerifiableTx;
}
const allRecorded: Array<{ file: string; c: SetCase }> = readdirSync(fixtureDir).filter((f) => f.endsWith('.json')).sort().flatMap((file) =>
  ((fromJson(JSON.parse(readFileSync(join(fixtureDir, file), 'utf8'))) as { cases: SetCase[] }).cases).map((c) => ({ file, c })));
const setCases: Array<{ file: string; c: SetCase }> = readdirSync(fixtureDir).filter((f) => f.endsWith('.json')).sort().flatMap((file) =>
  ((fromJson(JSON.parse(readFileSync(join(fixtureDir, file), 'utf8'))) as { cases: SetCase[] }).cases)
    .filter((c) => c.kind === 'verifiableSet')
    .map((c) => ({ file, c })));

type Root = { response: VerifiableTx; kvs: SetCase['request']['kvs']; trusted: TrustedState | null };
type Mut = (r: Root) => void;

/** Single-field tampers of everything under `v` (bytes flipped or added, numbers +-1, lists cut or grown, nullable parts removed). */
function mutationsOf(v: unknown, get: (r: Root) => unknown, set: (r: Root, x: unknown) => void, out: Mut[]): void {
  if (Buffer.isBuffer(v)) {
    out.push((r) => {
      const b = Buffer.from(get(r) as Buffer);
      if (b.length) b[b.length >> 1]! ^= 1;
      set(r, b.length ? b : Buffer.from([0x5a]));
    });
    return;
  }
  if (typeof v === 'string' && /^[0-9]+$/.test(v)) {
    out.push((r) => set(r, String(BigInt(get(r) as string) + 1n)));
    if (v !== '0') out.push((r) => set(r, String(BigInt(get(r) as string) - 1n)));
    return;
  }
  if (typeof v === 'number') {
    out.push((r) => set(r, (get(r) as number) + 1));
    if (v > 0) out.push((r) => set(r, (get(r) as number) - 1));
    return;
  }
  if (typeof v === 'boolean') {
    out.push((r) => set(r, !get(r)));
    return;
  }
  if (Array.isArray(v)) {
    if (v.length) {
      out.push((r) => (get(r) as unknown[]).shift());
      out.push((r) => { const a = get(r) as unknown[]; a.push(clone(a[a.length - 1])); });
    }
    v.forEach((x, i) => mutationsOf(x, (r) => (get(r) as unknown[])[i], (r, y) => { (get(r) as unknown[])[i] = y; }, out));
    return;
  }
  if (v && typeof v === 'object') {
    out.push((r) => set(r, null));
    for (const [k, x] of Object.entries(v)) mutationsOf(x, (r) => (get(r) as Record<string, unknown>)[k], (r, y) => { (get(r) as Record<string, unknown>)[k] = y; }, out);
  }
}

function outcome(fn: () => TrustedState): string {
  try {
    const s = fn();
    return `ok ${s.txId} ${s.alh.toString('hex')}`;
  } catch (e) {
    return e instanceof VerificationError ? 'refused' : `threw ${(e as Error).name}: ${(e as Error).message}`;
  }
}

test('one-pass verified-write check: recorded answers accepted with the same state', (t) => {
  t.true(setCases.length >= 4, `${setCases.length} recorded VerifiableSet answers`);
  for (const { file, c } of setCases) {
    const ref = outcome(() => verifyVerifiableSet(c.response, c.request.kvs!, c.trusted));
    t.true(ref.startsWith('ok'), `${file} ${c.name}`);
    t.is(outcome(() => verifyFast(c.response, c.request.kvs!, c.trusted)), ref, `${file} ${c.name}`);
  }
});

test('one-pass verified-write check: every tamper is judged as verifyVerifiableSet judges it', (t) => {
  let n = 0;
  let refused = 0;
  let typeErrors = 0;
  for (const { file, c } of setCases) {
    const root: Root = { response: c.response, kvs: c.request.kvs, trusted: c.trusted };
    const muts: Mut[] = [];
    mutationsOf(root.response, (r) => r.response, (r, x) => { r.response = x as VerifiableTx; }, muts);
    mutationsOf(root.kvs, (r) => r.kvs, (r, x) => { r.kvs = x as Root['kvs']; }, muts);
    if (root.trusted) mutationsOf(root.trusted.alh, (r) => r.trusted!.alh, (r, x) => { r.trusted!.alh = x as Buffer; }, muts);
    for (const m of muts) {
      const a = clone(root);
      m(a);
      const b = clone(a);
      const ref = outcome(() => verifyVerifiableSet(a.response, a.kvs ?? [], a.trusted));
      const fast = outcome(() => verifyFast(b.response, b.kvs ?? [], b.trusted));
      // A null entry: the reference throws a TypeError (the writer would retry, not halt); the one-pass check refuses.
      if (ref.startsWith('threw TypeError') && fast === 'refused') typeErrors++;
      else if (fast !== ref) t.fail(`${file} ${c.name} tamper #${n}: reference ${ref}, one-pass ${fast}`);
      if (ref === 'refused') refused++;
      n++;
    }
  }
  t.true(n > 500, `${n} tampers`);
  if (typeErrors) t.log(`${typeErrors} tampers (a null entry) make verifyVerifiableSet throw a TypeError; the one-pass check refuses them`);
  // (The rest change nothing that matters: optional parts set to null, metadata flags that encode alike...)
  t.true(refused + typeErrors > n * 0.8, `${refused} of ${n} refused`);
});

test('one-shot listed-entries check: every recorded tx and every tamper of it judged as verifyListedEntries judges it', (t) => {
  const judge = (fn: (tx: Tx) => boolean, tx: Tx): string => {
    try {
      const h = parseTxHeader(tx.header);
      return `ok ${fn.call(null, tx) ? 'listed' : 'none'} ${h.id}`;
    } catch (e) {
      return e instanceof VerificationError ? 'refused' : `threw ${(e as Error).name}: ${(e as Error).message}`;
    }
  };
  const ref = (tx: Tx) => verifyListedEntries(tx, parseTxHeader(tx.header));
  const fast = (tx: Tx) => verifyListedEntriesOnce(tx, parseTxHeader(tx.header));
  let n = 0;
  let typeErrors = 0;
  for (const { file, c } of allRecorded) {
    const tx = (c.kind === 'verifiableGet' ? (c.response as unknown as VerifiableEntry).verifiableTx!.tx : c.response.tx)!;
    t.is(judge(fast, tx), judge(ref, tx), `${file} ${c.name}`);
    const muts: Mut[] = [];
    const root = { response: { tx } } as unknown as Root;
    mutationsOf((root.response as unknown as { tx: Tx }).tx, (r) => (r.response as unknown as { tx: Tx }).tx, (r, x) => { (r.response as unknown as { tx: unknown }).tx = x; }, muts);
    for (const m of muts) {
      const a = clone(root);
      m(a);
      const ta = (a.response as unknown as { tx: Tx | null }).tx;
      if (!ta) continue;
      const r1 = judge(ref, clone(ta));
      const r2 = judge(fast, clone(ta));
      // verifyListedEntries meets a null entry with a TypeError rather than a VerificationError
      // (the writer would retry instead of halting); the one-shot check refuses it.
      if (r1.startsWith('threw TypeError') && r2 === 'refused') typeErrors++;
      else if (r1 !== r2) t.fail(`${file} ${c.name} tamper #${n}: reference ${r1}, one-shot ${r2}`);
      n++;
    }
  }
  if (typeErrors) t.log(`${typeErrors} tampers (a null entry) make verifyListedEntries throw a TypeError; the one-shot check refuses them`);
  t.true(n > 1000, `${n} tampers`);
});
