// Proof checks against real immudb v1.11.1 answers (recorded by test/fixtures/record-proofs.ts),
// then the same answers tampered with in every field, each of which must be refused.
import test, { type ExecutionContext } from 'ava';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import type { KVMetadata, Tx, TxHeader, VerifiableEntry, VerifiableTx } from '../../plugin/store/immudb-types.js';
import {
  VerificationError, entriesHash, entryDigest, kvMetadataBytes, leafHash, nodeHash, sha256, storedKeyOf, storedValueOf,
  txAlh, txEntryDigest, txInnerHash, txMetadataBytes, verifyAhtConsistency, verifyAhtInclusion, verifyAhtLastInclusion,
  verifyDualProof, verifyEntryInclusion, verifyTxEntries, verifyVerifiableEntry, verifyVerifiableSet, verifyVerifiableTx,
  linearAdvanceRange, verifyListedEntries, parseTxHeader, type TrustedState,
} from '../../plugin/store/proofs/index.js';

// ---------------------------------------------------------------------------------------------
// Fixtures

const fixtureDir = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/proofs');

type Kind = 'verifiableSet' | 'verifiableTxById' | 'verifiableGet';
interface KV { key: Buffer; value: Buffer; metadata?: KVMetadata | null }
interface Case {
  name: string;
  kind: Kind;
  request: { proveSinceTx: number; tx?: number; key?: Buffer; atTx?: number; kvs?: KV[]; entries?: string };
  trusted: TrustedState | null;
  expected: TrustedState;
  linearAdvanceTerms: number;
  response: VerifiableTx | VerifiableEntry;
}
interface Fixture {
  file: string;
  database: string;
  headerVersion: 0 | 1;
  states: Record<string, Buffer>;
  blTxIds: Record<string, number>;
  cases: Case[];
}

/** Buffers are stored as "hex:<digits>"; every other string (decimal uint64s) is left as is. */
function fromJson(v: unknown): unknown {
  if (typeof v === 'string' && v.startsWith('hex:')) return Buffer.from(v.slice(4), 'hex');
  if (Array.isArray(v)) return v.map(fromJson);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fromJson(x)]));
  return v;
}

const fixtures: Fixture[] = readdirSync(fixtureDir).filter((f) => f.endsWith('.json')).sort().map((file) => ({
  file,
  ...(fromJson(JSON.parse(readFileSync(join(fixtureDir, file), 'utf8'))) as Omit<Fixture, 'file'>),
}));
const allCases = fixtures.flatMap((f) => f.cases.map((c) => ({ f, c })));

function clone<T>(v: T): T {
  if (Buffer.isBuffer(v)) return Buffer.from(v) as T;
  if (Array.isArray(v)) return v.map(clone) as T;
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, clone(x)])) as T;
  return v;
}

/** Runs the check a client does for this kind of answer; returns the state to trust next. */
function verifyCase(c: Case): TrustedState {
  switch (c.kind) {
    case 'verifiableSet':
      return verifyVerifiableSet(c.response as VerifiableTx, c.request.kvs!, c.trusted);
    case 'verifiableTxById':
      return verifyVerifiableTx(c.response as VerifiableTx, c.trusted, { listedEntries: c.request.entries === 'EXCLUDE' ? 'none' : 'all' });
    case 'verifiableGet':
      return verifyVerifiableEntry(c.response as VerifiableEntry, c.trusted, { key: c.request.key!, atTx: c.request.atTx });
  }
}

function vtxOf(c: Case): VerifiableTx {
  return c.kind === 'verifiableGet' ? (c.response as VerifiableEntry).verifiableTx! : (c.response as VerifiableTx);
}

// ---------------------------------------------------------------------------------------------
// Fixture coverage: the recordings exercise what they claim to

test('fixtures cover both header versions, all answer kinds and linear advance proofs', (t) => {
  t.deepEqual(fixtures.map((f) => f.file), ['v0-lagging.json', 'v0.json', 'v1-lagging.json', 'v1.json']);
  for (const f of fixtures) {
    for (const c of f.cases) {
      const vtx = vtxOf(c);
      for (const h of [vtx.tx!.header!, vtx.dualProof!.sourceTxHeader!, vtx.dualProof!.targetTxHeader!]) {
        t.is(h.version, f.headerVersion, `${c.name}: header version`);
      }
    }
    const kinds = new Set(f.cases.map((c) => c.kind));
    t.true(kinds.has('verifiableTxById') && kinds.has('verifiableGet'), f.file);
    if (!f.file.includes('lagging')) t.true(kinds.has('verifiableSet'), f.file);
    t.true(f.cases.some((c) => c.trusted === null), `${f.file}: a case without trusted state`);
    t.true(f.cases.some((c) => c.trusted?.txId === Number(vtxOf(c).tx!.header!.id)), `${f.file}: trusted = target`);
    t.true(f.cases.some((c) => c.trusted && c.trusted.txId > Number(vtxOf(c).tx!.header!.id)), `${f.file}: trusted ahead`);
  }
  const lap = allCases.filter(({ c }) => c.linearAdvanceTerms > 0);
  t.true(lap.length >= 20, `${lap.length} cases with linear advance proofs`);
  // Both branches of the dual proof: source inside the target's Alh tree and past it.
  t.true(lap.some(({ c }) => {
    const dp = vtxOf(c).dualProof!;
    return Number(dp.sourceTxHeader!.id) < Number(dp.targetTxHeader!.blTxId);
  }));
  t.true(lap.some(({ c }) => {
    const dp = vtxOf(c).dualProof!;
    return Number(dp.sourceTxHeader!.id) >= Number(dp.targetTxHeader!.blTxId);
  }));
  t.true(allCases.some(({ c }) => (vtxOf(c).tx!.header!.nentries) === 17));
  t.true(allCases.some(({ c }) => (vtxOf(c).dualProof!.consistencyProof.length) > 2));
  t.true(allCases.some(({ c }) => (vtxOf(c).dualProof!.inclusionProof.length) > 2));
  t.true(allCases.some(({ c }) => vtxOf(c).tx!.entries.some((e) => e.metadata !== null)), 'entries with KV metadata');
  t.true(allCases.some(({ c }) => vtxOf(c).tx!.header!.metadata?.extra.length), 'headers with tx metadata');
});

test('our Alh of every recorded header equals the Alh the server reported in CurrentState', (t) => {
  let n = 0;
  for (const f of fixtures) {
    for (const c of f.cases) {
      const vtx = vtxOf(c);
      for (const h of [vtx.tx!.header!, vtx.dualProof!.sourceTxHeader!, vtx.dualProof!.targetTxHeader!]) {
        t.deepEqual(txAlh(h), f.states[h.id], `${f.file} tx ${h.id}`);
        n++;
      }
    }
  }
  t.true(n > 200);
});

// ---------------------------------------------------------------------------------------------
// Every recorded answer verifies

for (const { f, c } of allCases) {
  test(`valid: ${f.file}: ${c.name}`, (t) => {
    const before = clone(c);
    const state = verifyCase(c);
    t.is(state.txId, c.expected.txId);
    t.deepEqual(state.alh, c.expected.alh);
    t.deepEqual(c, before, 'verification must not modify its input');
  });
}

// ---------------------------------------------------------------------------------------------
// Tampering

type Path = (string | number)[];
interface Mutation { path: Path; what: string; apply: (root: Record<string, unknown>) => void }

const NULLABLE = new Set([
  'header', 'sourceTxHeader', 'targetTxHeader', 'dualProof', 'linearProof', 'LinearAdvanceProof', 'tx', 'entry', 'verifiableTx', 'inclusionProof',
]);

function at(root: unknown, path: Path): unknown {
  return path.reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], root);
}
function setAt(root: unknown, path: Path, value: unknown): void {
  (at(root, path.slice(0, -1)) as Record<string | number, unknown>)[path[path.length - 1]!] = value;
}

/** Every single-field change of `value` (under `path`) that an attacker could make. */
function mutations(value: unknown, path: Path): Mutation[] {
  const out: Mutation[] = [];
  const key = path[path.length - 1];
  if (Buffer.isBuffer(value)) {
    out.push({
      path, what: value.length ? 'flipped byte' : 'added byte',
      apply: (r) => {
        const b = Buffer.from(at(r, path) as Buffer);
        if (b.length) b[b.length >> 1]! ^= 0x01;
        // (0x5a, not 0x00: an empty value plus a 0x00 prefix byte is the real stored value)
        setAt(r, path, b.length ? b : Buffer.from([0x5a]));
      },
    });
    return out;
  }
  if (typeof value === 'string' && /^[0-9]+$/.test(value)) {
    out.push({ path, what: '+1', apply: (r) => setAt(r, path, String(BigInt(at(r, path) as string) + 1n)) });
    if (value !== '0') out.push({ path, what: '-1', apply: (r) => setAt(r, path, String(BigInt(at(r, path) as string) - 1n)) });
    return out;
  }
  if (typeof value === 'number') {
    out.push({ path, what: '+1', apply: (r) => setAt(r, path, (at(r, path) as number) + 1) });
    if (value > 0) out.push({ path, what: '-1', apply: (r) => setAt(r, path, (at(r, path) as number) - 1) });
    return out;
  }
  if (typeof value === 'boolean') {
    out.push({ path, what: 'flipped', apply: (r) => setAt(r, path, !at(r, path)) });
    return out;
  }
  if (Array.isArray(value)) {
    if (value.length > 0) {
      out.push({ path, what: 'dropped first', apply: (r) => (at(r, path) as unknown[]).shift() });
      out.push({ path, what: 'duplicated last', apply: (r) => { const a = at(r, path) as unknown[]; a.push(clone(a[a.length - 1])); } });
    }
    if (value.length > 1) {
      out.push({ path, what: 'dropped last', apply: (r) => (at(r, path) as unknown[]).pop() });
      if (!isDeepStrictEqual(value[0], value[1])) {
        out.push({ path, what: 'swapped first two', apply: (r) => { const a = at(r, path) as unknown[]; [a[0], a[1]] = [a[1], a[0]]; } });
      }
    }
    value.forEach((x, i) => out.push(...mutations(x, [...path, i])));
    return out;
  }
  if (value && typeof value === 'object') {
    if (typeof key === 'string' && NULLABLE.has(key)) out.push({ path, what: 'removed', apply: (r) => setAt(r, path, null) });
    for (const [k, x] of Object.entries(value)) out.push(...mutations(x, [...path, k]));
  }
  return out;
}

/** The inputs an attacker controls: the answer; for writes also what we believe we wrote; the trusted state is ours. */
function caseMutations(c: Case): Mutation[] {
  const ms = mutations(c.response, ['response']);
  // What we wrote is a set: the same pairs in another order are not a tamper.
  if (c.kind === 'verifiableSet') ms.push(...mutations(c.request.kvs, ['request', 'kvs']).filter((m) => m.what !== 'swapped first two'));
  if (c.kind === 'verifiableGet') ms.push(...mutations(c.request.key, ['request', 'key']));
  if (c.trusted) {
    ms.push(...mutations(c.trusted.alh, ['trusted', 'alh']));
    ms.push({ path: ['trusted', 'txId'], what: '+1', apply: (r) => { (r.trusted as TrustedState).txId += 1; } });
    if (c.trusted.txId > 1) ms.push({ path: ['trusted', 'txId'], what: '-1', apply: (r) => { (r.trusted as TrustedState).txId -= 1; } });
  }
  return ms;
}

const pathText = (p: Path) => p.map((k) => (typeof k === 'number' ? `[${k}]` : `.${k}`)).join('').slice(1);

/**
 * Fields no proof covers, by design of immudb's messages: an Entry's revision and expired flag,
 * and the vLen of an entry listed without its value (vLen is not part of the entry digest).
 */
const UNCOVERED = [/\.entry\.revision$/, /\.entry\.expired$/, /\.entries\[\d+\]\.vLen$/];

/** What the error message must mention for a change at this path. */
function expectedMessage(path: string, what: string): RegExp {
  if (what === 'removed') return /is missing/;
  if (path.startsWith('request.kvs')) return /tx \d+/;
  if (path.startsWith('request.key')) return /not the requested|entry inclusion/;
  if (path.startsWith('trusted')) return /dual proof \(tx \d+ -> tx \d+\)|new tx \d+ is not after the trusted tx \d+/;
  if (path.includes('LinearAdvanceProof')) return /linear advance proof|dual proof.*(header|Alh)/;
  if (path.includes('linearProof')) return /linear proof/;
  if (path.includes('consistencyProof')) return /consistency proof/;
  if (path.includes('lastInclusionProof') || path.includes('targetBlTxAlh')) return /last inclusion proof/;
  if (path.includes('dualProof.inclusionProof')) return /inclusion proof of tx \d+/;
  if (path.includes('dualProof')) return /dual proof|tx header/;
  if (path === 'response.inclusionProof' || path.startsWith('response.inclusionProof.')) return /entry inclusion proof/;
  if (path.startsWith('response.entry')) return /entry/;
  if (path.includes('.entries')) return /tx \d+.*(entr|eH)|dual proof/;
  return /tx \d+|tx header/;
}

for (const { f, c } of allCases) {
  test(`tampered: ${f.file}: ${c.name}`, (t) => {
    const ms = caseMutations(c);
    const uncovered: string[] = [];
    for (const m of ms) {
      const tampered = clone(c) as unknown as Record<string, unknown>;
      m.apply(tampered);
      const where = `${pathText(m.path)} (${m.what})`;
      // The tamper must really change the input, or the assertion below proves nothing.
      if (isDeepStrictEqual(tampered, c)) t.fail(`mutation ${where} did not change the input`);
      let error: unknown;
      try {
        verifyCase(tampered as unknown as Case);
      } catch (e) {
        error = e;
      }
      if (error === undefined) {
        uncovered.push(pathText(m.path));
        continue;
      }
      if (!(error instanceof VerificationError)) {
        t.fail(`${where}: threw ${(error as Error)?.constructor?.name}: ${(error as Error)?.message}`);
        continue;
      }
      const re = expectedMessage(pathText(m.path), m.what);
      if (!re.test(error.message)) t.fail(`${where}: message "${error.message}" does not match ${re}`);
    }
    const unexpected = uncovered.filter((p) => !UNCOVERED.some((re) => re.test(p)));
    t.deepEqual(unexpected, [], `accepted tampered fields: ${unexpected.join(', ')}`);
    t.true(ms.length > 30, `${ms.length} mutations`);
  });
}

test('the fields no proof covers are only those listed, and they really are accepted when changed', (t) => {
  const seen = new Set<string>();
  for (const { c } of allCases) {
    for (const m of caseMutations(c)) {
      const p = pathText(m.path);
      if (!UNCOVERED.some((re) => re.test(p))) continue;
      const tampered = clone(c) as unknown as Record<string, unknown>;
      m.apply(tampered);
      try {
        verifyCase(tampered as unknown as Case);
        seen.add(p.replace(/\[\d+\]/g, '[]').replace(/^response\.(verifiableTx\.)?/, ''));
      } catch {
        // vLen is checked whenever the value is listed or we know what we wrote.
      }
    }
  }
  t.deepEqual([...seen].sort(), ['entry.expired', 'entry.revision', 'tx.entries[].vLen']);
});

test('the tampering reaches every hash, number and list of the proofs', (t) => {
  const reached = new Set<string>();
  for (const { c } of allCases) {
    for (const m of caseMutations(c)) reached.add(`${pathText(m.path).replace(/\[\d+\]/g, '[]').replace(/^response\.(verifiableTx\.)?/, '')} ${m.what}`);
  }
  const required = [
    'tx.header.prevAlh flipped byte', 'tx.header.eH flipped byte', 'tx.header.blRoot flipped byte', 'tx.header.id +1', 'tx.header.ts +1',
    'tx.header.nentries +1', 'tx.header.blTxId +1', 'tx.header.blTxId -1', 'tx.header.version +1', 'tx.header.version -1',
    'tx.header.metadata.extra added byte', 'tx.header.metadata.extra flipped byte', 'tx.header.metadata.truncatedTxID +1',
    'dualProof.sourceTxHeader.prevAlh flipped byte', 'dualProof.targetTxHeader.blRoot flipped byte',
    'dualProof.inclusionProof[] flipped byte', 'dualProof.inclusionProof dropped first', 'dualProof.inclusionProof swapped first two',
    'dualProof.consistencyProof[] flipped byte', 'dualProof.consistencyProof dropped last', 'dualProof.consistencyProof swapped first two',
    'dualProof.lastInclusionProof[] flipped byte', 'dualProof.lastInclusionProof duplicated last', 'dualProof.targetBlTxAlh flipped byte',
    'dualProof.linearProof.terms[] flipped byte', 'dualProof.linearProof.terms dropped last', 'dualProof.linearProof.sourceTxId +1',
    'dualProof.linearProof.TargetTxId -1', 'dualProof.LinearAdvanceProof.linearProofTerms[] flipped byte',
    'dualProof.LinearAdvanceProof.linearProofTerms swapped first two', 'dualProof.LinearAdvanceProof.inclusionProofs[].terms[] flipped byte',
    'dualProof.LinearAdvanceProof.inclusionProofs[].terms dropped first', 'dualProof.LinearAdvanceProof.inclusionProofs swapped first two',
    'dualProof.LinearAdvanceProof.inclusionProofs[].leaf +1', 'dualProof.LinearAdvanceProof.inclusionProofs[].width +1',
    'dualProof.LinearAdvanceProof removed', 'tx.entries[].hValue flipped byte', 'tx.entries[].key flipped byte', 'tx.entries[].value flipped byte',
    'tx.entries[].metadata.expiration.expiresAt +1', 'tx.entries[].metadata.nonIndexable flipped', 'tx.entries[].metadata.deleted flipped',
    'tx.entries dropped last', 'tx.entries duplicated last', 'entry.value flipped byte', 'entry.key flipped byte', 'entry.tx +1',
    'inclusionProof.leaf +1', 'inclusionProof.width -1', 'inclusionProof.terms[] flipped byte', 'inclusionProof.terms swapped first two',
    'request.kvs[].value flipped byte', 'request.kvs dropped first', 'request.kvs duplicated last', 'trusted.alh flipped byte', 'trusted.txId +1',
  ];
  for (const r of required) t.true(reached.has(r), r);
});

// ---------------------------------------------------------------------------------------------
// The tamper helper itself

test('every tamper kind changes its input and leaves the original alone', (t) => {
  const sample = {
    buf: Buffer.from('abcd'), empty: Buffer.alloc(0), long: '7', zero: '0', num: 3, flag: false,
    list: [Buffer.from('a'), Buffer.from('b')], header: { id: '1' },
  };
  const original = clone(sample);
  const ms = mutations(sample, []);
  const kinds = new Set(ms.map((m) => m.what));
  for (const k of ['flipped byte', 'added byte', '+1', '-1', 'flipped', 'dropped first', 'dropped last', 'duplicated last', 'swapped first two', 'removed']) {
    t.true(kinds.has(k), k);
  }
  for (const m of ms) {
    const copy = clone(sample) as unknown as Record<string, unknown>;
    m.apply(copy);
    t.false(isDeepStrictEqual(copy, sample), `${pathText(m.path)} ${m.what}`);
  }
  t.deepEqual(sample, original);
  t.false(isDeepStrictEqual(Buffer.from([1]), Buffer.from([0])), 'deep equality compares buffer contents');
});

// ---------------------------------------------------------------------------------------------
// Named attacks

const lagging = fixtures.find((f) => f.file === 'v1-lagging.json')!;
const v1 = fixtures.find((f) => f.file === 'v1.json')!;
const v0 = fixtures.find((f) => f.file === 'v0.json')!;
const firstCase = (f: Fixture, pred: (c: Case) => boolean) => {
  const c = f.cases.find(pred);
  if (!c) throw new Error(`no such case in ${f.file}`);
  return clone(c);
};
const throwsVE = (t: ExecutionContext, fn: () => unknown, message: RegExp) =>
  t.throws(fn, { instanceOf: VerificationError, message });

test('a shortened linear proof is refused', (t) => {
  const c = firstCase(v1, (x) => x.kind === 'verifiableTxById' && (vtxOf(x).dualProof!.linearProof!.terms.length) >= 2);
  vtxOf(c).dualProof!.linearProof!.terms.pop();
  throwsVE(t, () => verifyCase(c), /linear proof from tx \d+ to tx \d+ has \d+ terms, expected \d+/);
});

test('a linear proof that skips a tx (ids and terms shifted together) is refused', (t) => {
  const c = firstCase(v1, (x) => x.kind === 'verifiableTxById' && (vtxOf(x).dualProof!.linearProof!.terms.length) >= 2);
  const lp = vtxOf(c).dualProof!.linearProof!;
  lp.sourceTxId = String(Number(lp.sourceTxId) + 1);
  lp.terms.shift();
  throwsVE(t, () => verifyCase(c), /linear proof is for tx \d+ to tx \d+, expected/);
});

test('a trusted state from another database (same tx id, different Alh) is refused', (t) => {
  let checked = 0;
  for (const c0 of v1.cases.filter((x) => x.trusted)) {
    const c = clone(c0);
    c.trusted = { txId: c.trusted!.txId, alh: v0.states[c.trusted!.txId]! };
    t.notDeepEqual(c.trusted.alh, c0.trusted!.alh);
    throwsVE(t, () => verifyCase(c), /dual proof \(tx \d+ -> tx \d+\): (source|target) tx header does not hash to the Alh of tx \d+/);
    checked++;
  }
  t.true(checked > 10);
});

test('a trusted state from another server replaying the same writes is refused', (t) => {
  // The lagging databases on the same server hold different txs under the same ids.
  const c = clone(lagging.cases.find((x) => x.trusted && x.trusted.txId < x.expected.txId)!);
  const other = fixtures.find((f) => f.file === 'v0-lagging.json')!;
  c.trusted = { txId: c.trusted!.txId, alh: other.states[c.trusted!.txId]! };
  throwsVE(t, () => verifyCase(c), /does not hash to the Alh/);
});

test('a missing linear advance proof is refused when one is needed', (t) => {
  const c = firstCase(lagging, (x) => x.linearAdvanceTerms > 0);
  const dp = vtxOf(c).dualProof!;
  const range = linearAdvanceRange(dp);
  t.truthy(range);
  dp.LinearAdvanceProof = null;
  throwsVE(t, () => verifyCase(c), new RegExp(`linear advance proof is missing but needed for tx ${range!.startTxId} to tx ${range!.endTxId}`));
});

test('linearAdvanceRange is null when the server sends no linear advance proof', (t) => {
  for (const c of v1.cases) t.is(linearAdvanceRange(vtxOf(c).dualProof!), null);
  for (const c of lagging.cases) t.is(linearAdvanceRange(vtxOf(c).dualProof!) !== null, c.linearAdvanceTerms > 0, c.name);
});

test('a linear advance proof with a chain of txs that are not in the target tree is refused', (t) => {
  // Keep the chain consistent (every term re-derived) but point it at other txs: the inclusion
  // proofs no longer match. This is the "linear fake" the proof exists to stop.
  const c = firstCase(lagging, (x) => x.linearAdvanceTerms >= 3);
  const lap = vtxOf(c).dualProof!.LinearAdvanceProof!;
  lap.linearProofTerms[0] = sha256(Buffer.from('forged Alh'));
  throwsVE(t, () => verifyCase(c), /linear advance proof: inclusion proof of tx \d+: Alh of tx \d+ is not included/);
});

test('verifyTxEntries: an extra, a missing or a wrong entry is refused', (t) => {
  const c = firstCase(v1, (x) => x.kind === 'verifiableSet' && x.request.kvs!.length === 3);
  const tx = (c.response as VerifiableTx).tx!;
  const kvs = c.request.kvs!;
  t.is(verifyTxEntries(tx, kvs).id, Number(tx.header!.id));
  throwsVE(t, () => verifyTxEntries(tx, [...kvs, { key: Buffer.from('extra'), value: Buffer.from('x') }]), /tx \d+ has 3 entries in its header, expected 4/);
  throwsVE(t, () => verifyTxEntries(tx, kvs.slice(1)), /tx \d+ has 3 entries in its header, expected 2/);
  throwsVE(t, () => verifyTxEntries(tx, [kvs[0]!, kvs[1]!, { ...kvs[2]!, value: Buffer.from('wrong') }]), /hValue is not the hash of the expected value/);
  throwsVE(t, () => verifyTxEntries(tx, [kvs[0]!, kvs[1]!, { ...kvs[2]!, key: Buffer.from('other') }]), /is not one of the expected keys/);
  throwsVE(t, () => verifyTxEntries(tx, [kvs[0]!, kvs[1]!, kvs[1]!]), /repeat key/);
  // The server lists an extra entry (header and eH unchanged) or drops one.
  const more = clone(tx);
  more.entries.push(clone(more.entries[0]!));
  throwsVE(t, () => verifyTxEntries(more, kvs), /lists 4 entries, expected 3/);
  const fewer = clone(tx);
  fewer.entries.pop();
  throwsVE(t, () => verifyTxEntries(fewer, kvs), /lists 2 entries, expected 3/);
  // Entries in another order are the same set but another eH.
  const reordered = clone(tx);
  reordered.entries.reverse();
  throwsVE(t, () => verifyTxEntries(reordered, kvs), /entries do not hash to the header's eH/);
  // Expected metadata must match too.
  throwsVE(t, () => verifyTxEntries(tx, [kvs[0]!, kvs[1]!, { ...kvs[2]!, metadata: { deleted: true, expiration: null, nonIndexable: false } }]), /metadata differs/);
  // The listed value, when sent, must be the stored form of what we wrote (prefix byte + value).
  const mine = kvs.find((kv) => storedKeyOf(kv.key).equals(tx.entries[0]!.key))!;
  const listed = clone(tx);
  listed.entries[0]!.value = storedValueOf(mine.value);
  t.is(verifyTxEntries(listed, kvs).id, Number(tx.header!.id));
  listed.entries[0]!.value = mine.value;
  throwsVE(t, () => verifyTxEntries(listed, kvs), /value differs from the expected value/);
  // A key without the plain-key prefix byte is not one of ours, even if the rest matches.
  const unprefixed = clone(tx);
  unprefixed.entries[0]!.key = Buffer.concat([Buffer.from([1]), unprefixed.entries[0]!.key.subarray(1)]);
  throwsVE(t, () => verifyTxEntries(unprefixed, kvs), /is not one of the expected keys/);
  // The one-pass write check refuses resolved entries itself (it no longer goes through verifyListedEntries).
  const resolved = clone(c.response as VerifiableTx);
  resolved.tx!.kvEntries = [{ tx: '3', key: Buffer.from('k'), value: Buffer.from('v'), referencedBy: null, metadata: null, expired: false, revision: '1' }];
  throwsVE(t, () => verifyVerifiableSet(resolved, kvs, c.trusted), /resolved kvEntries/);
});

test('a write that claims a tx not after the trusted one is refused', (t) => {
  const c = firstCase(v1, (x) => x.kind === 'verifiableSet' && x.trusted !== null);
  const txId = Number((c.response as VerifiableTx).tx!.header!.id);
  throwsVE(t, () => verifyVerifiableSet(c.response as VerifiableTx, c.request.kvs!, { txId, alh: v1.states[txId]! }), /new tx \d+ is not after the trusted tx \d+/);
});

test('a read answered with another key, another tx or a reference is refused', (t) => {
  const c = firstCase(v1, (x) => x.kind === 'verifiableGet' && x.trusted !== null);
  const ve = c.response as VerifiableEntry;
  throwsVE(t, () => verifyVerifiableEntry(ve, c.trusted, { key: Buffer.from('another key') }), /not the requested/);
  throwsVE(t, () => verifyVerifiableEntry(ve, c.trusted, { key: c.request.key!, atTx: Number(ve.entry!.tx) + 1 }), /not the requested tx/);
  const ref = clone(ve);
  ref.entry!.referencedBy = { tx: ref.entry!.tx, key: ref.entry!.key, atTx: '0', metadata: null, revision: '1' };
  throwsVE(t, () => verifyVerifiableEntry(ref, c.trusted, { key: c.request.key! }), /references are not supported/);
  // The value of another entry of the same tx does not pass for this key.
  const swapped = clone(ve);
  swapped.entry!.value = Buffer.from('{"req":3,"part":1,"pad":"xxxxxxxxxxxxxxxxxxxxx"}');
  throwsVE(t, () => verifyVerifiableEntry(swapped, c.trusted, { key: c.request.key! }), /entry inclusion proof .*not included/);
});

test('partial or resolved entry lists are refused', (t) => {
  const c = firstCase(v1, (x) => x.kind === 'verifiableTxById' && vtxOf(x).tx!.entries.length === 17);
  const partial = clone(c);
  vtxOf(partial).tx!.entries.splice(3, 1);
  throwsVE(t, () => verifyCase(partial), /lists 16 of its 17 entries/);
  const resolved = clone(c);
  vtxOf(resolved).tx!.kvEntries = [{ tx: '3', key: Buffer.from('k'), value: Buffer.from('v'), referencedBy: null, metadata: null, expired: false, revision: '1' }];
  throwsVE(t, () => verifyCase(resolved), /resolved kvEntries/);
});

test('without a trusted state the proof must be of the tx against itself', (t) => {
  const c = firstCase(v1, (x) => x.kind === 'verifiableTxById' && x.trusted !== null && x.trusted.txId < x.expected.txId);
  throwsVE(t, () => verifyVerifiableTx(c.response as VerifiableTx, undefined), /dual proof \(tx (\d+) -> tx \1\): source tx header is for tx \d+/);
  // trusted.txId === 0 means the same as no trusted state.
  const self = firstCase(v1, (x) => x.kind === 'verifiableTxById' && x.trusted === null);
  t.deepEqual(verifyVerifiableTx(self.response as VerifiableTx, { txId: 0, alh: Buffer.alloc(32) }), self.expected);
});

// ---------------------------------------------------------------------------------------------
// Shapes

test('malformed messages fail with VerificationError naming the field', (t) => {
  const c = firstCase(v1, (x) => x.kind === 'verifiableTxById' && x.trusted !== null);
  const vtx = c.response as VerifiableTx;
  const header = vtx.tx!.header!;
  throwsVE(t, () => verifyVerifiableTx(null, c.trusted), /verifiable tx is missing/);
  throwsVE(t, () => verifyVerifiableTx({ ...vtx, tx: { ...vtx.tx!, header: null } }, c.trusted), /tx header is missing/);
  throwsVE(t, () => verifyVerifiableTx({ ...vtx, dualProof: null }, c.trusted), /dual proof .* is missing/);
  throwsVE(t, () => txAlh({ ...header, eH: header.eH.subarray(0, 31) }), /eH is 31 bytes, expected a 32-byte sha256 digest/);
  throwsVE(t, () => txAlh({ ...header, prevAlh: undefined as unknown as Buffer }), /prevAlh is missing or not bytes/);
  throwsVE(t, () => txAlh({ ...header, id: '9007199254740993' }), /beyond the safe integer range/);
  throwsVE(t, () => txAlh({ ...header, id: '0' }), /id \(0\) must be at least 1/);
  throwsVE(t, () => txAlh({ ...header, id: '-3' }), /not an unsigned integer/);
  throwsVE(t, () => txAlh({ ...header, id: '1e3' }), /not an unsigned integer/);
  throwsVE(t, () => txAlh({ ...header, blTxId: header.id }), /blTxId .* must be lower than the tx id/);
  throwsVE(t, () => txAlh({ ...header, version: 2 }), /version \(2\) is out of range/);
  throwsVE(t, () => txAlh({ ...header, nentries: 0 }), /nentries \(0\) is out of range/);
  throwsVE(t, () => txAlh({ ...header, ts: '9223372036854775808' }), /out of the int64 range/);
  throwsVE(t, () => txAlh({ ...header, version: 0, metadata: { truncatedTxID: '0', extra: Buffer.from('x') } }), /version 0 but carries tx metadata/);
  throwsVE(t, () => txAlh({ ...header, metadata: { truncatedTxID: '0', extra: Buffer.alloc(257) } }), /extra is 257 bytes/);
  throwsVE(t, () => verifyVerifiableTx(vtx, { txId: 1.5, alh: Buffer.alloc(32) }), /trusted state: txId/);
  throwsVE(t, () => verifyVerifiableTx(vtx, { txId: 2, alh: Buffer.alloc(20) }), /trusted state \(tx 2\): alh is 20 bytes/);
  const dp = vtx.dualProof!;
  const [s, tg] = [Number(dp.sourceTxHeader!.id), Number(dp.targetTxHeader!.id)];
  verifyDualProof(dp, s, tg, v1.states[s]!, v1.states[tg]!);
  throwsVE(t, () => verifyDualProof({ ...dp, consistencyProof: [...dp.consistencyProof, Buffer.alloc(33)] }, s, tg, v1.states[s]!, v1.states[tg]!),
    /consistencyProof\[\d+\] is 33 bytes/);
  throwsVE(t, () => verifyDualProof({ ...dp, targetBlTxAlh: Buffer.alloc(0) }, s, tg, v1.states[s]!, v1.states[tg]!), /targetBlTxAlh is 0 bytes/);
  throwsVE(t, () => verifyDualProof({ ...dp, linearProof: { ...dp.linearProof!, TargetTxId: '18446744073709551616' } }, s, tg, v1.states[s]!, v1.states[tg]!),
    /out of the uint64 range/);
  throwsVE(t, () => verifyDualProof(dp, Number.NaN, 2, Buffer.alloc(32), Buffer.alloc(32)), /source tx id \(NaN\) is not a valid tx id/);
  throwsVE(t, () => verifyDualProof(dp, 5, 4, Buffer.alloc(32), Buffer.alloc(32)), /source tx is after target tx/);
});

// ---------------------------------------------------------------------------------------------
// Building blocks, against independent constructions

test('entry digests: stored and user forms agree, v0 and v1 layouts, metadata encoding', (t) => {
  const key = Buffer.from('k1');
  const value = Buffer.from('v1');
  const hValue = sha256(Buffer.from([0]), value);
  const d1 = entryDigest(1, { userKey: key, userValue: value });
  t.deepEqual(entryDigest(1, { storedKey: storedKeyOf(key), hValue }), d1);
  t.deepEqual(entryDigest(1, { storedKey: storedKeyOf(key), storedValue: storedValueOf(value) }), d1);
  t.deepEqual(d1, sha256(Buffer.from([0, 0, 0, 3]), Buffer.from([0]), key, hValue));
  t.deepEqual(entryDigest(0, { userKey: key, userValue: value }), sha256(Buffer.from([0]), key, hValue));
  const md: KVMetadata = { deleted: true, expiration: { expiresAt: '258' }, nonIndexable: true };
  t.deepEqual(kvMetadataBytes(md), Buffer.from([0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 2]));
  t.deepEqual(kvMetadataBytes({ deleted: false, expiration: null, nonIndexable: false }), Buffer.alloc(0));
  t.deepEqual(kvMetadataBytes({ deleted: false, expiration: { expiresAt: '-1' }, nonIndexable: false }), Buffer.from([1, 255, 255, 255, 255, 255, 255, 255, 255]));
  t.deepEqual(entryDigest(1, { userKey: key, userValue: value, metadata: md }), sha256(Buffer.from([0, 11]), kvMetadataBytes(md), Buffer.from([0, 3]), Buffer.from([0]), key, hValue));
  throwsVE(t, () => entryDigest(0, { userKey: key, userValue: value, metadata: md }), /version 0 tx headers cannot have/);
  throwsVE(t, () => entryDigest(2, { userKey: key, userValue: value }), /unsupported tx header version 2/);
  t.deepEqual(txMetadataBytes({ truncatedTxID: '7', extra: Buffer.from('ab') }), Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 7, 1, 0, 2, 0x61, 0x62]));
  t.deepEqual(txMetadataBytes({ truncatedTxID: '0', extra: Buffer.alloc(0) }), Buffer.alloc(0));
});

test('recorded tx entries rebuild eH, and txInnerHash/txAlh follow the v0 and v1 layouts', (t) => {
  for (const f of fixtures) {
    const c = f.cases.find((x) => vtxOf(x).tx!.entries.length === vtxOf(x).tx!.header!.nentries && x.kind !== 'verifiableGet')!;
    const tx = vtxOf(c).tx as Tx;
    const h = tx.header as TxHeader;
    t.deepEqual(entriesHash(tx.entries.map((e) => txEntryDigest(h.version, e))), h.eH, f.file);
    const u64 = (n: string) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; };
    const mdb = txMetadataBytes(h.metadata);
    const versioned = h.version === 0
      ? [Buffer.from([0, 0]), Buffer.from([h.nentries >> 8, h.nentries & 255])]
      : [Buffer.from([0, 1]), Buffer.from([mdb.length >> 8, mdb.length & 255]), mdb, Buffer.from([0, 0, h.nentries >> 8, h.nentries & 255])];
    const inner = sha256(u64(h.ts), ...versioned, h.eH, u64(h.blTxId), h.blRoot);
    t.deepEqual(txInnerHash(h), inner, f.file);
    t.deepEqual(txAlh(h), sha256(u64(h.id), h.prevAlh, inner), f.file);
  }
});

// RFC 6962 trees and proofs, built here independently of the verifier, for many sizes.
function mth(leaves: Buffer[]): Buffer {
  if (leaves.length === 1) return leafHash(leaves[0]!);
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}
function auditPath(m: number, leaves: Buffer[]): Buffer[] {
  if (leaves.length <= 1) return [];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return m < k ? [...auditPath(m, leaves.slice(0, k)), mth(leaves.slice(k))] : [...auditPath(m - k, leaves.slice(k)), mth(leaves.slice(0, k))];
}
function subproof(m: number, leaves: Buffer[], complete: boolean): Buffer[] {
  const n = leaves.length;
  if (m === n) return complete ? [] : [mth(leaves)];
  let k = 1;
  while (k * 2 < n) k *= 2;
  return m <= k
    ? [...subproof(m, leaves.slice(0, k), complete), mth(leaves.slice(k))]
    : [...subproof(m - k, leaves.slice(k), false), mth(leaves.slice(0, k))];
}
/** immudb's consistency path: RFC 6962's, with the old root first when the old size is a power of two. */
function immudbConsistency(m: number, leaves: Buffer[]): Buffer[] {
  const p = subproof(m, leaves, true);
  return (m & (m - 1)) === 0 ? [mth(leaves.slice(0, m)), ...p] : p;
}

test('entry tree: entriesHash matches RFC 6962 and every inclusion path verifies only at its own leaf', (t) => {
  for (let n = 1; n <= 20; n++) {
    const digests = Array.from({ length: n }, (_, i) => sha256(Buffer.from(`d${i}`)));
    const root = entriesHash(digests);
    t.deepEqual(root, mth(digests));
    for (let i = 0; i < n; i++) {
      const terms = auditPath(i, digests);
      verifyEntryInclusion({ leaf: i, width: n, terms }, digests[i]!, root, n);
      for (const other of [i - 1, i + 1].filter((j) => j >= 0 && j < n)) {
        throwsVE(t, () => verifyEntryInclusion({ leaf: other, width: n, terms }, digests[i]!, root), /entry inclusion proof/);
      }
      // The root does not commit to the width (a path for width n can fit width n+1), hence the
      // check of the width against the header's nentries.
      throwsVE(t, () => verifyEntryInclusion({ leaf: i, width: n + 1, terms }, digests[i]!, root, n), /width \d+ does not match the tx's \d+ entries/);
      if (terms.length) throwsVE(t, () => verifyEntryInclusion({ leaf: i, width: n, terms: terms.slice(1) }, digests[i]!, root), /entry inclusion proof/);
      throwsVE(t, () => verifyEntryInclusion({ leaf: i, width: n, terms: [...terms, root] }, digests[i]!, root), /entry inclusion proof/);
    }
  }
  throwsVE(t, () => verifyEntryInclusion({ leaf: 0, width: 3, terms: [] }, Buffer.alloc(32), Buffer.alloc(32), 4), /width 3 does not match the tx's 4 entries/);
  throwsVE(t, () => verifyEntryInclusion({ leaf: 3, width: 3, terms: [] }, Buffer.alloc(32), Buffer.alloc(32)), /leaf \(3\) is out of range/);
  throwsVE(t, () => verifyEntryInclusion(null, Buffer.alloc(32), Buffer.alloc(32)), /entry inclusion proof is missing/);
});

test('Alh tree: inclusion, last inclusion and consistency paths for all sizes up to 24', (t) => {
  const alhs = Array.from({ length: 24 }, (_, i) => sha256(Buffer.from(`alh${i + 1}`)));
  const leaves = alhs.map((a) => a); // the tree hashes each Alh as a leaf
  const root = (n: number) => mth(leaves.slice(0, n));
  for (let j = 1; j <= 24; j++) {
    for (let i = 1; i <= j; i++) {
      const terms = auditPath(i - 1, leaves.slice(0, j));
      verifyAhtInclusion(terms, i, j, alhs[i - 1]!, root(j));
      if (i === j) verifyAhtLastInclusion(terms, j, alhs[j - 1]!, root(j));
      if (terms.length) throwsVE(t, () => verifyAhtInclusion(terms.slice(0, -1), i, j, alhs[i - 1]!, root(j)), /inclusion proof/);
      if (i < j) throwsVE(t, () => verifyAhtInclusion(terms, i + 1, j, alhs[i - 1]!, root(j)), /inclusion proof/);
    }
    for (let i = 1; i < j; i++) {
      const terms = immudbConsistency(i, leaves.slice(0, j));
      verifyAhtConsistency(terms, i, j, root(i), root(j));
      throwsVE(t, () => verifyAhtConsistency(terms.slice(1), i, j, root(i), root(j)), /consistency proof does not link the tree of \d+ txs to the tree of \d+ txs/);
      throwsVE(t, () => verifyAhtConsistency(terms, i, j, root(i + 1), root(j)), /consistency proof/);
      if (i + 1 < j) throwsVE(t, () => verifyAhtConsistency(terms, i + 1, j, root(i + 1), root(j)), /consistency proof/);
    }
    // Same size: immudb sends the root's two children (right first); none is fine too.
    if (j > 1) {
      let k = 1;
      while (k * 2 < j) k *= 2;
      const children = [mth(leaves.slice(k, j)), mth(leaves.slice(0, k))];
      verifyAhtConsistency(children, j, j, root(j), root(j));
      throwsVE(t, () => verifyAhtConsistency([children[1]!, children[0]!], j, j, root(j), root(j)), /consistency proof/);
    }
    verifyAhtConsistency([], j, j, root(j), root(j));
    if (j > 1) throwsVE(t, () => verifyAhtConsistency([], j - 1, j, root(j - 1), root(j)), /consistency proof/);
  }
  t.pass();
});

test('a null entry in a tampered answer is a VerificationError, not a crash (the writer halts instead of retrying)', (t) => {
  const c = firstCase(v1, (x) => x.kind === 'verifiableSet' && x.request.kvs!.length === 3);
  const tx = clone((c.response as VerifiableTx).tx!);
  (tx.entries as unknown[])[1] = null;
  throwsVE(t, () => verifyTxEntries(tx, c.request.kvs!), /tx \d+ entry 1 is missing/);
  const header = parseTxHeader(tx.header);
  throwsVE(t, () => verifyListedEntries(tx, header), /tx \d+ entry 1 is missing/);
});
