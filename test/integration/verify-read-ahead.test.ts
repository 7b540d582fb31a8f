// `verify --all` reads TxScan pages one ahead (plugin/store/tx-scan-pages.ts): against a real
// immudb, the next page is asked for before the current one is checked (pages growing from
// FIRST_PAGE_TXS to SCAN_PAGE_TXS transactions), and a page read ahead
// never counts: a tampered transaction in the current page fails the walk with its own
// VerificationError (the page after, failing or not, is dropped), and the auditor's trusted
// state and checkpoint do not move.
import test from 'ava';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dirSnapshot } from '../helpers/dir-snapshot.js';
import { startImmudb, type ImmudbServer } from '../../scripts/lib/immudb-server.js';
import { ImmudbClient, ImmudbError } from '../../plugin/store/immudb-client.js';
import { VerificationError } from '../../plugin/store/proofs/index.js';
import { FIRST_PAGE_TXS, SCAN_PAGE_TXS } from '../../plugin/store/tx-scan-pages.js';
import { AuditReader } from '../../plugin/reader/audit-reader.js';

const PREFIX = 'ra';
const DB = 'readahead';
const TXS = 3 * SCAN_PAGE_TXS + 2;
const dir = mkdtempSync(join(tmpdir(), 'kia-read-ahead-'));
let immudb: ImmudbServer;
/** The first tx of each page the walk asks for, as tx-scan-pages sizes them (none halved). */
const PAGE_STARTS: number[] = [];
for (let start = 1, size = Math.min(FIRST_PAGE_TXS, SCAN_PAGE_TXS); start <= TXS; start += size, size = Math.min(SCAN_PAGE_TXS, size * 2)) PAGE_STARTS.push(start);
const conn = () => ({ host: immudb.host, port: immudb.port, username: immudb.username, password: immudb.password, database: DB });

test.before(async () => {
  immudb = await startImmudb();
  const client = await ImmudbClient.connect({ ...conn(), createDatabase: true });
  for (let i = 0; i < TXS; i++) {
    const id = randomUUID();
    await client.set([{ key: Buffer.from(`${PREFIX}:entry:${id}`), value: Buffer.from(JSON.stringify({ id, i })) }]);
  }
  await client.close();
});
test.after.always(async () => {
  await immudb?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** A reader whose TxScan calls are logged (and may be changed) in `events`. */
async function openLogged(stateDir: string, events: string[], change?: (from: number, txs: Awaited<ReturnType<ImmudbClient['txScan']>>) => Promise<typeof txs>) {
  const reader = await AuditReader.open(conn(), PREFIX, stateDir);
  const client = (reader as unknown as { client: ImmudbClient }).client;
  const scan = client.txScan.bind(client);
  client.txScan = async (from, limit, action) => {
    events.push(`scan ${from}`);
    const txs = await scan(from, limit, action);
    return change ? change(from, txs) : txs;
  };
  return reader;
}

test.serial('the next page is asked for before the current one is checked', async (t) => {
  const events: string[] = [];
  const reader = await openLogged(mkdtempSync(join(dir, 'auditor-')), events);
  try {
    const r = await reader.verifyAll({ onTx: (id) => events.push(`checked ${id}`) });
    t.like(r, { fromTx: 1, transactions: r.toTx, entries: TXS });
  } finally {
    await reader.close();
  }
  const scans = events.filter((e) => e.startsWith('scan'));
  t.deepEqual(scans, PAGE_STARTS.map((s) => `scan ${s}`));
  // Each page after the first was asked for before the first tx of the page before was checked.
  for (let i = 1; i < scans.length; i++) {
    const firstOfPrevious = `checked ${PAGE_STARTS[i - 1]}`;
    t.true(events.indexOf(scans[i]!) < events.indexOf(firstOfPrevious), `${scans[i]} before ${firstOfPrevious}: ${events.join(', ')}`);
  }
});

test.serial('a tampered tx fails the walk with its own error while the page after is in flight; nothing is trusted', async (t) => {
  const stateDir = mkdtempSync(join(dir, 'auditor-'));
  // A first audit of everything (the trusted state and checkpoint the failed walk must leave alone).
  const first = await AuditReader.open(conn(), PREFIX, stateDir);
  await first.verifyAll();
  await first.close();
  const before = dirSnapshot(stateDir);
  for (const afterPage of ['answers', 'fails'] as const) {
    const events: string[] = [];
    const reader = await openLogged(stateDir, events, async (from, txs) => {
      const tx3 = txs.find((x) => Number(x.header?.id) === 3);
      if (tx3) {
        // tx 3: a value changed (its hValue and eH left alone).
        const e = tx3.entries[0]!;
        e.value = Buffer.from(e.value.toString().replace('"i":2', '"i":9'));
        return txs;
      }
      // The page read ahead, answered only once the walk has failed (or failing).
      if (from > 3) {
        await new Promise((r) => setTimeout(r, 200));
        if (afterPage === 'fails') throw new ImmudbError('connection lost', 14);
      }
      return txs;
    });
    try {
      const err = await t.throwsAsync(reader.verifyAll({ fromTx: 1 }));
      t.true(err instanceof VerificationError, `${afterPage}: ${err?.name}: ${err?.message}`);
      t.regex(err!.message, /^tx 3 /);
      // Up to the page holding tx 3, and the one after it, read ahead and dropped.
      const holding = PAGE_STARTS.findLastIndex((s) => s <= 3);
      t.deepEqual(events, PAGE_STARTS.slice(0, holding + 2).map((s) => `scan ${s}`), afterPage);
    } finally {
      await reader.close();
    }
    t.deepEqual(dirSnapshot(stateDir), before, `${afterPage}: trusted state and checkpoint unchanged`);
  }
});
