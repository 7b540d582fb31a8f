// The building blocks of `verify --all`: TxChain on chains built here from immudb's formulas
// (v0 and v1 headers), and the trusted state it saves, now written asynchronously (durable when
// the promise resolves, saves of one file serialized, the newest waiting state written).
// The same checks against a real immudb, with tampered answers: test/integration/verify-chain.test.ts.
import test from 'ava';
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import type { Tx, TxEntry } from '../../plugin/store/immudb-types.js';
import {
  INITIAL_ALH, TxChain, VerificationError, entriesHash, sha256, txAlh, txEntryDigest,
} from '../../plugin/store/proofs/index.js';
import { TrustedStateStore } from '../../plugin/store/trusted-state.js';

function entry(i: number, version: 0 | 1): TxEntry {
  const value = Buffer.concat([Buffer.from([0]), Buffer.from(`{"n":${i}}`)]);
  return {
    key: Buffer.from(`\0k:${i}`),
    value,
    hValue: sha256(value),
    vLen: value.length,
    metadata: version === 1 && i % 5 === 0 ? { deleted: false, expiration: { expiresAt: '4102444800' }, nonIndexable: false } : null,
  };
}

/** `n` consecutive txs from tx 1, each header hashed as immudb does; returns them and every Alh (alhs[0] = initial). */
function chainOf(n: number, version: 0 | 1): { txs: Tx[]; alhs: Buffer[] } {
  const txs: Tx[] = [];
  const alhs = [INITIAL_ALH];
  for (let id = 1; id <= n; id++) {
    const entries = Array.from({ length: 1 + (id % 3) }, (_, j) => entry(id * 10 + j, version));
    const header = {
      id: String(id), prevAlh: alhs[id - 1]!, ts: String(1_700_000_000 + id), nentries: entries.length,
      eH: entriesHash(entries.map((e) => txEntryDigest(version, e))), blTxId: String(id - 1), blRoot: sha256(Buffer.from(`root ${id}`)),
      version, metadata: null,
    };
    txs.push({ header, entries, kvEntries: [], zEntries: [] });
    alhs.push(txAlh(header));
  }
  return { txs, alhs };
}

const clone = (tx: Tx): Tx => structuredClone(tx);

for (const version of [0, 1] as const) {
  test(`v${version}: a chain from tx 1, from an anchor, or with none, ends in the last Alh`, (t) => {
    const { txs, alhs } = chainOf(9, version);
    const all = new TxChain(1, INITIAL_ALH);
    for (const tx of txs) all.append(tx);
    all.finish(9, alhs[9]!);
    const mid = new TxChain(4, alhs[3]);
    mid.expectAlh(6, alhs[6]!);
    for (const tx of txs.slice(3)) mid.append(tx);
    mid.finish(9, alhs[9]!);
    const loose = new TxChain(4);
    for (const tx of txs.slice(3)) loose.append(tx);
    loose.finish(9, alhs[9]!);
    t.is(loose.nextTxId, 10);
    t.deepEqual(loose.lastAlh, alhs[9]);
  });

  test(`v${version}: every change to a chained tx is refused`, (t) => {
    const { txs, alhs } = chainOf(9, version);
    const run = (list: Array<Tx | null>, o: { anchor?: Buffer | null; expect?: [number, Buffer]; end?: [number, Buffer] } = {}) => {
      const c = new TxChain(1, o.anchor === null ? undefined : (o.anchor ?? INITIAL_ALH));
      if (o.expect) c.expectAlh(...o.expect);
      for (const tx of list) c.append(tx);
      c.finish(...(o.end ?? [9, alhs[9]!]));
    };
    const throwsVE = (fn: () => void, re: RegExp) => t.throws(fn, { instanceOf: VerificationError, message: re });
    run(txs);
    const changed = (i: number, f: (tx: Tx) => void) => txs.map((x, j) => {
      const c = clone(x);
      if (j === i) f(c);
      return c;
    });
    const flip = (b: Buffer) => { const c = Buffer.from(b); c[0]! ^= 1; return c; };
    throwsVE(() => run(changed(4, (x) => { x.header!.ts = String(BigInt(x.header!.ts) + 1n); })), /^tx 6: its header's prevAlh is not the Alh of tx 5/);
    throwsVE(() => run(changed(8, (x) => { x.header!.ts = String(BigInt(x.header!.ts) + 1n); })), /does not end in the Alh proven for tx 9/);
    throwsVE(() => run(changed(4, (x) => { x.header!.prevAlh = flip(x.header!.prevAlh); })), /^tx 5: its header's prevAlh is not the Alh of tx 4/);
    throwsVE(() => run(changed(4, (x) => { x.header!.blRoot = flip(x.header!.blRoot); })), /^tx 6: its header's prevAlh/);
    throwsVE(() => run(changed(4, (x) => { x.header!.blTxId = '3'; })), /^tx 6: its header's prevAlh/);
    throwsVE(() => run(changed(4, (x) => { x.header!.eH = flip(x.header!.eH); })), /^tx 5: entries do not hash to the header's eH/);
    throwsVE(() => run(changed(4, (x) => { x.header!.nentries += 1; })), /^tx 5 lists \d+ of its \d+ entries/);
    throwsVE(() => run(changed(4, (x) => { x.header!.id = '6'; })), /^tx 5: the scan returned tx 6 in its place/);
    throwsVE(() => run(changed(4, (x) => { x.entries[0]!.value = flip(x.entries[0]!.value); })), /^tx 5 entry 0: value does not hash to hValue/);
    throwsVE(() => run(changed(4, (x) => { x.entries = []; })), /^tx 5 lists none of its \d+ entries/);
    throwsVE(() => run(changed(4, (x) => { (x.entries as unknown[])[0] = null; })), /^tx 5 entry 0 is missing/);
    throwsVE(() => run([...txs.slice(0, 4), ...txs.slice(5)]), /^tx 5: the scan returned tx 6 in its place/);
    throwsVE(() => run([txs[1]!, txs[0]!, ...txs.slice(2)]), /^tx 1: the scan returned tx 2 in its place/);
    throwsVE(() => run([...txs.slice(0, 5), null]), /^tx 6 is missing/);
    throwsVE(() => run(txs.slice(0, 8)), /^the scan ended at tx 8, but tx 9 was proven/);
    throwsVE(() => run(txs, { end: [9, alhs[8]!] }), /does not end in the Alh proven for tx 9/);
    throwsVE(() => run(txs, { anchor: flip(INITIAL_ALH) }), /^tx 1: its header's prevAlh is not the Alh of tx 0/);
    throwsVE(() => run(txs, { expect: [5, alhs[4]!] }), /^tx 5: its header does not hash to the Alh trusted for tx 5/);
    throwsVE(() => run(txs.slice(0, 7), { expect: [8, alhs[8]!], end: [7, alhs[7]!] }), /the trusted tx 8 is after the end of the chain/);
    throwsVE(() => new TxChain(3).finish(2, alhs[2]!), /does not end in the Alh proven/);
    throwsVE(() => new TxChain(3).expectAlh(2, alhs[2]!), /before the start of the chain/);
    // With no anchor the first header's prevAlh is bound by the chain after it (and the end).
    throwsVE(() => run(changed(0, (x) => { x.header!.prevAlh = flip(x.header!.prevAlh); }), { anchor: null }), /^tx 2: its header's prevAlh is not the Alh of tx 1/);
  });
}

// ---------------------------------------------------------------------------------------------
// The trusted state, saved asynchronously

const state = (txId: number) => ({ log: 'db', database: 'db', txId, alh: sha256(Buffer.from(`alh ${txId}`)), serverUuid: 'srv-1', durable: undefined });

test('save resolves once the state is on disk, atomically replaced, with no temp file left', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kia-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const store = new TrustedStateStore(dir);
  await store.save(state(3));
  t.deepEqual(store.load('db', 'db'), state(3));
  await store.save(state(4));
  t.deepEqual(store.load('db', 'db'), state(4));
  t.deepEqual(readdirSync(join(dir, 'logs')), ['db.json']);
  t.is(new TrustedStateStore(dir).load('db', 'db')?.txId, 4);
});

test('concurrent saves of one file do not interleave; the newest waiting state wins and every caller hears of it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kia-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const a = new TrustedStateStore(dir);
  const b = new TrustedStateStore(dir);
  const order: number[] = [];
  const saves = [1, 2, 3, 4, 5].map((n) => (n % 2 ? a : b).save(state(n)).then(() => order.push(n)));
  // Another file is written independently.
  const other = a.save({ ...state(9), log: 'other', database: 'other' });
  await Promise.all([...saves, other]);
  t.deepEqual(a.load('db', 'db'), state(5));
  t.deepEqual(a.load('other', 'other'), { ...state(9), log: 'other', database: 'other' });
  // 1 was being written when 2..5 arrived: 2..4 were superseded by 5, all resolved with it.
  t.deepEqual(order, [1, 2, 3, 4, 5]);
  t.deepEqual(readdirSync(join(dir, 'logs')).sort(), ['db.json', 'other.json']);
  // Many rounds of racing saves always leave a whole, newest state.
  for (let round = 0; round < 20; round++) {
    await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).save(state(100 + round * 10 + i))));
    t.deepEqual(a.load('db', 'db'), state(100 + round * 10 + 5));
  }
});

test('a save after the state directory was removed creates it again (the store makes it once per process)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kia-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const store = new TrustedStateStore(dir);
  await store.save(state(1));
  rmSync(join(dir, 'logs'), { recursive: true });
  await store.save(state(2));
  t.deepEqual(store.load('db', 'db'), state(2));
  t.deepEqual(readdirSync(join(dir, 'logs')), ['db.json'], 'no temp file left');
});

test('a failed save rejects its callers and leaves the previous state', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kia-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const store = new TrustedStateStore(dir);
  // The first save creates the file under a temp name: that path taken by a directory, it fails (also as root).
  const tmp = join(dir, 'logs', `db.json.${process.pid}.${threadId}.tmp`);
  mkdirSync(tmp, { recursive: true });
  await t.throwsAsync(store.save(state(1)), { name: 'UnusableTrustFile', message: /^trusted state file \S+db\.json cannot be written \(EISDIR/ });
  t.is(store.load('db', 'db'), undefined);
  rmdirSync(tmp);
  await store.save(state(1));
  // Later saves overwrite the file in place: the file replaced by a directory, they fail.
  const file = join(dir, 'logs', 'db.json');
  renameSync(file, `${file}.keep`);
  mkdirSync(file);
  const failing = [store.save(state(2)), store.save(state(3))];
  for (const p of failing) await t.throwsAsync(p, { name: 'UnusableTrustFile', message: /^trusted state file \S+db\.json cannot be written \(EISDIR/ });
  rmdirSync(file);
  renameSync(`${file}.keep`, file);
  t.deepEqual(store.load('db', 'db'), state(1));
  // The queue is free again.
  await store.save(state(4));
  t.deepEqual(store.load('db', 'db'), state(4));
  writeFileSync(join(dir, 'logs', 'db.json'), '{"log":"db","server_uuid":"srv-1","database":"db","tx_id":1,"alh":"zz"}');
  t.throws(() => store.load('db', 'db'), { message: /db\.json does not hold a valid state for log db \(database db\)$/ });
  writeFileSync(join(dir, 'logs', 'db.json'), '{"server_uuid":');
  t.throws(() => store.load('db', 'db'), { message: /db\.json is not valid JSON/ });
});
