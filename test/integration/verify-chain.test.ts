// `verify --all` (AuditReader.verifyAll) checks a range of transactions as one Alh chain read
// with TxScan, anchored by ONE dual proof of its last transaction against the auditor's trusted
// state. Against a real immudb (signing its states), on databases with v0 and v1 tx headers:
// the honest history passes in every position of the trusted state; every tampered answer
// (values, each header field, dropped or reordered transactions, a forged dual proof, a scan
// that stops early, a history rewritten with a consistent chain) fails with a VerificationError,
// and the auditor's trusted state and checkpoint do not move.
import test, { type ExecutionContext } from 'ava';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dirSnapshot } from '../helpers/dir-snapshot.js';
import { startImmudb, type ImmudbServer } from '../../scripts/lib/immudb-server.js';
import { ImmudbClient } from '../../plugin/store/immudb-client.js';
import type { KVMetadata, KeyValueInput, Tx, VerifiableTx } from '../../plugin/store/immudb-types.js';
import {
  VerificationError, entriesHash, parseTxHeader, sha256, txAlh, txEntryDigest,
} from '../../plugin/store/proofs/index.js';
import { AuditReader, type VerifyAllResult } from '../../plugin/reader/audit-reader.js';
import { TrustedStateStore } from '../../plugin/store/trusted-state.js';

const PREFIX = 'vc';
const FAR_FUTURE = '4102444800';
const dir = mkdtempSync(join(tmpdir(), 'kia-verify-chain-'));
const keys = (() => {
  const server = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const priv = join(dir, 'server.key');
  writeFileSync(priv, server.privateKey.export({ type: 'sec1', format: 'pem' }));
  return {
    priv,
    pub: server.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    otherPub: other.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
})();

let immudb: ImmudbServer;

interface Db {
  name: string;
  version: 0 | 1;
  /** Audit entries written in phase 1 and in phase 2. */
  entries1: number;
  entries2: number;
  /** Last tx of phase 1 and of phase 2. */
  tx1: number;
  tx2: number;
  /** An auditor that verified phase 1 (trusted state and checkpoint at tx1). */
  audited1: string;
  uuid: string;
}
const dbs: Db[] = [];

function conn(database: string, extra: Partial<Parameters<typeof ImmudbClient.connect>[0]> = {}) {
  return { host: immudb.host, port: immudb.port, username: immudb.username, password: immudb.password, database, ...extra };
}

/** `txs` transactions, each with 1-4 audit entries and as many trace-index keys (and, v1, some metadata). */
async function writeTxs(client: ImmudbClient, version: 0 | 1, txs: number, seed: number): Promise<number> {
  let audit = 0;
  for (let i = 0; i < txs; i++) {
    const kvs: Array<KeyValueInput & { metadata?: KVMetadata }> = [];
    const n = 1 + ((seed + i) % 4);
    for (let j = 0; j < n; j++) {
      const id = randomUUID();
      kvs.push({ key: Buffer.from(`${PREFIX}:entry:${id}`), value: Buffer.from(JSON.stringify({ id, i, j, seed, pad: 'x'.repeat((i * 37 + j * 11) % 300) })) });
      kvs.push({ key: Buffer.from(`${PREFIX}:trace:${id}`), value: Buffer.from(id) });
    }
    if (version === 1 && i % 3 === 1) kvs[1]!.metadata = { deleted: false, expiration: { expiresAt: FAR_FUTURE }, nonIndexable: false };
    await client.set(kvs);
    audit += n;
  }
  return audit;
}

test.before(async () => {
  immudb = await startImmudb({ args: ['--signingKey', keys.priv] });
  for (const version of [0, 1] as const) {
    const name = `chain_v${version}`;
    const client = await ImmudbClient.connect(conn(name, { createDatabase: true, writeTxHeaderVersion: version }));
    const entries1 = await writeTxs(client, version, 5, version);
    const tx1 = Number((await client.currentState()).txId);
    const audited1 = mkdtempSync(join(dir, `audited1-v${version}-`));
    const r = await verifyAll(name, audited1, { key: keys.pub });
    if (r.toTx !== tx1 || r.entries !== entries1) throw new Error(`phase 1 audit: ${JSON.stringify(r)}`);
    const entries2 = await writeTxs(client, version, 9, 10 + version);
    const tx2 = Number((await client.currentState()).txId);
    await client.close();
    dbs.push({ name, version, entries1, entries2, tx1, tx2, audited1, uuid: r.serverUuid });
  }
});
test.after.always(async () => {
  await immudb?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

interface Tamper {
  /** Changes the txs of a TxScan answer (for the call starting at `initialTx`); may return another list. */
  scan?: (txs: Tx[], initialTx: number) => Tx[];
  /** Changes the VerifiableTxById answer. */
  proof?: (vtx: VerifiableTx) => VerifiableTx;
}

async function verifyAll(db: string, stateDir: string, o: { tamper?: Tamper; fromTx?: number; key?: string } = {}): Promise<VerifyAllResult> {
  const reader = await AuditReader.open(conn(db), PREFIX, stateDir, { serverPublicKey: o.key });
  try {
    const client = (reader as unknown as { client: ImmudbClient }).client;
    if (o.tamper?.scan) {
      const scan = client.txScan.bind(client);
      const f = o.tamper.scan;
      client.txScan = async (initialTx, limit, action) => f(await scan(initialTx, limit, action), initialTx);
    }
    if (o.tamper?.proof) {
      const get = client.verifiableTxById.bind(client);
      const f = o.tamper.proof;
      client.verifiableTxById = async (tx, since, action) => f(await get(tx, since, action));
    }
    return await reader.verifyAll(o.fromTx !== undefined ? { fromTx: o.fromTx } : {});
  } finally {
    await reader.close();
  }
}


/** A copy of the auditor that verified phase 1. */
function auditorAt1(db: Db): string {
  const d = mkdtempSync(join(dir, 'auditor-'));
  cpSync(db.audited1, d, { recursive: true });
  return d;
}

/** The tampered audit must fail with a VerificationError matching `re`, and leave the auditor's files alone. */
async function refused(t: ExecutionContext, db: Db, stateDir: string, tamper: Tamper, re: RegExp, o: { fromTx?: number; key?: string } = {}) {
  // (The server binding, made on first contact before any check, is not part of what is verified.)
  const states = () => Object.fromEntries(Object.entries(dirSnapshot(stateDir)).filter(([f]) => !f.includes('/bindings/')));
  const before = states();
  const err = await t.throwsAsync(verifyAll(db.name, stateDir, { tamper, ...o }));
  t.true(err instanceof VerificationError, `${err?.name}: ${err?.message}`);
  t.regex(err!.message, re);
  t.deepEqual(states(), before, 'trusted state and checkpoint unchanged');
}

const flip = (b: Buffer) => {
  const c = Buffer.from(b);
  c[c.length >> 1]! ^= 1;
  return c;
};

/** Applies `f` to tx `id` wherever a scan returns it. */
const atTx = (id: number, f: (tx: Tx, txs: Tx[]) => void): Tamper => ({
  scan: (txs) => {
    const i = txs.findIndex((x) => Number(x.header!.id) === id);
    if (i >= 0) f(txs[i]!, txs);
    return txs;
  },
});

/** The index of an audit entry (with a value) in a tx. */
const auditEntry = (tx: Tx) => tx.entries.findIndex((e) => e.key.subarray(1).toString().startsWith(`${PREFIX}:entry:`));

/** Rewrites a tx's entries consistently: hValue and eH recomputed (the header's Alh changes). */
function rewriteEntries(tx: Tx) {
  const e = tx.entries[auditEntry(tx)]!;
  e.value = flip(e.value);
  e.hValue = sha256(e.value);
  tx.header!.eH = entriesHash(tx.entries.map((x) => txEntryDigest(tx.header!.version, x)));
}

for (const version of [0, 1] as const) {
  const dbOf = () => dbs.find((d) => d.version === version)!;
  const v = `v${version}`;

  test.serial(`${v}: honest history passes from every position of the trusted state`, async (t) => {
    const db = dbOf();
    // First contact, from tx 1 (chained to immudb's initial Alh).
    const fresh = mkdtempSync(join(dir, 'auditor-'));
    const a = await verifyAll(db.name, fresh, { key: keys.pub });
    t.like(a, { fromTx: 1, toTx: db.tx2, transactions: db.tx2, entries: db.entries1 + db.entries2, trustedTxId: db.tx2 });
    // Nothing new.
    const again = await verifyAll(db.name, fresh);
    t.like(again, { fromTx: db.tx2 + 1, toTx: db.tx2, transactions: 0, entries: 0, trustedTxId: db.tx2 });
    // From the checkpoint: the range starts right after the trusted tx.
    const at1 = auditorAt1(db);
    const b = await verifyAll(db.name, at1, { key: keys.pub });
    t.like(b, { fromTx: db.tx1 + 1, toTx: db.tx2, transactions: db.tx2 - db.tx1, entries: db.entries2, trustedTxId: db.tx2 });
    t.is(new TrustedStateStore(at1).load(db.name, db.name)?.txId, db.tx2);
    t.is(JSON.parse(readFileSync(join(at1, 'logs', `${db.name}.audited.json`), 'utf8')).last_tx, db.tx2);
    // The trusted tx inside the range (an older range audited again), and at its end.
    t.like(await verifyAll(db.name, auditorAt1(db), { fromTx: 2 }), { fromTx: 2, toTx: db.tx2, transactions: db.tx2 - 1, trustedTxId: db.tx2 });
    t.like(await verifyAll(db.name, at1, { fromTx: 1 }), { fromTx: 1, toTx: db.tx2, trustedTxId: db.tx2 });
    // A range starting after a gap past the trusted tx.
    // ... which does not continue the audited history: the checkpoint stays (decisions #24).
    const gap = auditorAt1(db);
    t.like(await verifyAll(db.name, gap, { fromTx: db.tx1 + 3 }), { fromTx: db.tx1 + 3, toTx: db.tx2, transactions: db.tx2 - db.tx1 - 2, trustedTxId: db.tx2, checkpoint: db.tx1 });
    t.is(JSON.parse(readFileSync(join(gap, 'logs', `${db.name}.audited.json`), 'utf8')).last_tx, db.tx1);
    // The next run from the checkpoint audits the gap (the trusted state is past it already).
    t.like(await verifyAll(db.name, gap), { fromTx: db.tx1 + 1, toTx: db.tx2, checkpoint: db.tx2, firstContact: false });
  });

  test.serial(`${v}: a modified value is refused, with or without its hValue and eH recomputed`, async (t) => {
    const db = dbOf();
    const mid = db.tx1 + 3;
    await refused(t, db, auditorAt1(db), atTx(mid, (tx) => {
      const e = tx.entries[auditEntry(tx)]!;
      e.value = flip(e.value);
    }), new RegExp(`^tx ${mid} entry \\d+: value does not hash to hValue`));
    await refused(t, db, auditorAt1(db), atTx(mid, (tx) => {
      const e = tx.entries[auditEntry(tx)]!;
      e.value = flip(e.value);
      e.hValue = sha256(e.value);
    }), new RegExp(`^tx ${mid}: entries do not hash to the header's eH`));
    // eH recomputed too: the header's Alh changes, the next header no longer chains to it.
    await refused(t, db, auditorAt1(db), atTx(mid, rewriteEntries), new RegExp(`^tx ${mid + 1}: its header's prevAlh is not the Alh of tx ${mid}`));
    // ... also in the last tx, which the dual proof covers.
    await refused(t, db, auditorAt1(db), atTx(db.tx2, rewriteEntries), new RegExp(`does not end in the Alh proven for tx ${db.tx2}`));
    // ... also with no trusted state (first contact: the chain from tx 1).
    await refused(t, db, mkdtempSync(join(dir, 'auditor-')), atTx(3, rewriteEntries), /^tx 4: its header's prevAlh is not the Alh of tx 3/);
    // An audit entry sent without its value.
    await refused(t, db, auditorAt1(db), atTx(mid, (tx) => {
      tx.entries[auditEntry(tx)]!.value = Buffer.alloc(0);
    }), new RegExp(`^tx ${mid} entry \\d+ \\(${PREFIX}:entry:\\S+\\): its value was not sent`));
  });

  test.serial(`${v}: a history rewritten with a consistent chain does not end in the proven Alh`, async (t) => {
    const db = dbOf();
    const mid = db.tx1 + 2;
    // The attacker changes tx `mid` and recomputes every later header's prevAlh.
    let prev: Buffer | undefined;
    const tamper: Tamper = {
      scan: (txs) => {
        for (const tx of txs) {
          const id = Number(tx.header!.id);
          if (id === mid) rewriteEntries(tx);
          if (id > mid) tx.header!.prevAlh = prev!;
          if (id >= mid) prev = txAlh(tx.header!);
        }
        return txs;
      },
    };
    await refused(t, db, auditorAt1(db), tamper, new RegExp(`^the chain of headers up to tx ${db.tx2} does not end in the Alh proven for tx ${db.tx2}`));
    // ... and a dual proof forged to match the rewritten last header cannot link it to the trusted state.
    prev = undefined;
    const forged: Tamper = {
      ...tamper,
      proof: (vtx) => {
        vtx.tx!.header = vtx.dualProof!.targetTxHeader = { ...vtx.tx!.header!, eH: flip(vtx.tx!.header!.eH) };
        return vtx;
      },
    };
    await refused(t, db, auditorAt1(db), forged, new RegExp(`^tx ${db.tx2}: dual proof \\(tx ${db.tx1} -> tx ${db.tx2}\\)`));
  });

  test.serial(`${v}: every header field of a scanned tx is covered`, async (t) => {
    const db = dbOf();
    const mid = db.tx1 + 4;
    const last = db.tx2;
    const cases: Array<[string, (h: NonNullable<Tx['header']>) => void, RegExp, RegExp]> = [
      ['id', (h) => { h.id = String(Number(h.id) + 1); }, /the scan returned tx \d+ in its place/, /the scan returned tx \d+ in its place/],
      ['prevAlh', (h) => { h.prevAlh = flip(h.prevAlh); }, new RegExp(`^tx ${mid}: its header's prevAlh is not the Alh of tx ${mid - 1}`), new RegExp(`^tx ${last}: its header's prevAlh`)],
      ['ts', (h) => { h.ts = String(BigInt(h.ts) + 1n); }, new RegExp(`^tx ${mid + 1}: its header's prevAlh is not the Alh of tx ${mid}`), /does not end in the Alh proven/],
      ['nentries', (h) => { h.nentries += 1; }, new RegExp(`^tx ${mid} lists \\d+ of its \\d+ entries`), new RegExp(`^tx ${last} lists \\d+ of its \\d+ entries`)],
      ['eH', (h) => { h.eH = flip(h.eH); }, new RegExp(`^tx ${mid}: entries do not hash to the header's eH`), new RegExp(`^tx ${last}: entries do not hash`)],
      ['blTxId', (h) => { h.blTxId = String(BigInt(h.blTxId) - 1n); }, new RegExp(`^tx ${mid + 1}: its header's prevAlh is not the Alh of tx ${mid}`), /does not end in the Alh proven/],
      ['blRoot', (h) => { h.blRoot = flip(h.blRoot); }, new RegExp(`^tx ${mid + 1}: its header's prevAlh is not the Alh of tx ${mid}`), /does not end in the Alh proven/],
    ];
    for (const [field, change, reMid, reLast] of cases) {
      for (const [id, re] of [[mid, reMid], [last, reLast]] as const) {
        t.log(`${field} of tx ${id}`);
        await refused(t, db, auditorAt1(db), atTx(id, (tx) => change(tx.header!)), re);
      }
    }
    if (version === 1) {
      await refused(t, db, auditorAt1(db), atTx(mid, (tx) => { tx.header!.metadata = { truncatedTxID: '0', extra: Buffer.from('x') }; }),
        new RegExp(`^tx ${mid + 1}: its header's prevAlh is not the Alh of tx ${mid}`));
    }
    await refused(t, db, auditorAt1(db), atTx(mid, (tx) => { tx.header!.version = 1 - version; }), /prevAlh is not the Alh|entries do not hash|version 0 but carries|cannot have/);
  });

  test.serial(`${v}: a dropped, repeated or reordered tx, or a scan that stops early, is refused`, async (t) => {
    const db = dbOf();
    const mid = db.tx1 + 2;
    await refused(t, db, auditorAt1(db), { scan: (txs) => txs.filter((x) => Number(x.header!.id) !== mid) },
      new RegExp(`^tx ${mid}: the scan returned tx ${mid + 1} in its place`));
    await refused(t, db, auditorAt1(db), { scan: (txs) => txs.flatMap((x) => (Number(x.header!.id) === mid ? [x, x] : [x])) },
      new RegExp(`^tx ${mid + 1}: the scan returned tx ${mid} in its place`));
    await refused(t, db, auditorAt1(db), {
      scan: (txs) => {
        const i = txs.findIndex((x) => Number(x.header!.id) === mid);
        if (i >= 0 && i + 1 < txs.length) [txs[i], txs[i + 1]] = [txs[i + 1]!, txs[i]!];
        return txs;
      },
    }, new RegExp(`^tx ${mid}: the scan returned tx ${mid + 1} in its place`));
    // The scan stops before the server's state: nothing after tx mid.
    await refused(t, db, auditorAt1(db), { scan: (txs) => txs.filter((x) => Number(x.header!.id) <= mid) },
      new RegExp(`^tx ${mid + 1}: the scan returned no transactions, but the server reports tx ${db.tx2}`));
  });

  test.serial(`${v}: a dual proof that does not hold is refused`, async (t) => {
    const db = dbOf();
    const tag = new RegExp(`^tx ${db.tx2}: dual proof \\(tx ${db.tx1} -> tx ${db.tx2}\\)`);
    await refused(t, db, auditorAt1(db), { proof: (v) => { v.dualProof!.inclusionProof[0] = flip(v.dualProof!.inclusionProof[0]!); return v; } }, tag);
    await refused(t, db, auditorAt1(db), { proof: (v) => { v.dualProof!.linearProof!.terms.pop(); return v; } }, tag);
    await refused(t, db, auditorAt1(db), { proof: (v) => { v.dualProof!.sourceTxHeader!.blRoot = flip(v.dualProof!.sourceTxHeader!.blRoot); return v; } }, tag);
    await refused(t, db, auditorAt1(db), { proof: (v) => { v.dualProof!.targetTxHeader!.ts = String(BigInt(v.dualProof!.targetTxHeader!.ts) + 1n); return v; } }, tag);
    await refused(t, db, auditorAt1(db), { proof: (v) => { v.dualProof = null; return v; } }, new RegExp(`^tx ${db.tx2}: dual proof .* is missing`));
    // The proven tx's header itself altered (its Alh no longer matches the proof's target).
    await refused(t, db, auditorAt1(db), { proof: (v) => { v.tx!.header!.blRoot = flip(v.tx!.header!.blRoot); return v; } }, tag);
    // A proof of an earlier tx than asked for.
    const earlier = await (async () => {
      const c = await ImmudbClient.connect(conn(db.name));
      try {
        return await c.verifiableTxById(db.tx2 - 1, db.tx1, 0);
      } finally {
        await c.close();
      }
    })();
    await refused(t, db, auditorAt1(db), { proof: () => earlier }, new RegExp(`^tx ${db.tx2}: asked for tx ${db.tx2}, immudb proved tx ${db.tx2 - 1}`));
  });

  test.serial(`${v}: the trusted state is checked where the chain passes it, and the signature of the proven state`, async (t) => {
    const db = dbOf();
    // A trusted Alh that is not the server's: inside the range and right before it.
    for (const fromTx of [1, db.tx1 + 1]) {
      const d = auditorAt1(db);
      const file = join(d, 'logs', `${db.name}.json`);
      // Written as a state file of earlier versions (JSON), which is still read.
      const s = new TrustedStateStore(d).load(db.name, db.name)!;
      writeFileSync(file, JSON.stringify({ log: s.log, database: s.database, tx_id: s.txId, alh: flip(s.alh).toString('hex'), server_uuid: s.serverUuid }));
      await refused(t, db, d, {}, /does not hash to the Alh|Alh trusted/, { fromTx });
    }
    // The proven state must be signed by the configured key.
    await refused(t, db, auditorAt1(db), {}, new RegExp(`^(tx ${db.tx2}: )?state of tx ${db.tx2} of database ${db.name} is not signed by the configured server key`), { key: keys.otherPub });
    await refused(t, db, auditorAt1(db), { proof: (v) => { v.signature = null; return v; } }, /is not signed, but a server signing key is configured/, { key: keys.pub });
  });
}
