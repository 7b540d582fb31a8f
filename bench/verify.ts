// Benchmark 3: verification throughput over 100,000 audit entries, written directly with our
// client in 1024-entry transactions (realistic entries, as the plugin encodes them). Compared,
// in one run against the same entries:
//  - whole history: `verify --all` as the command runs it (verifyAllCovered: TxScan with values,
//    the next page asked for while the current one is checked, every entry checked against its
//    header's eH, the headers checked as one local Alh chain, ONE dual proof of the last
//    transaction against the trusted state, and the coverage report), against plain reads of
//    the same transactions (TxScan, values included, one call after another), in alternated
//    rounds (the machine's load drifts: each ratio is also taken within a round), and a key scan; benchmark 6 (search.ts) repeats verify --all
//    and plain TxScan next to the index update;
//  - single entries: `verify <id>` (AuditReader.verify: VerifiableGet + proofs + state file),
//    VerifiableGet + proofs with the state in memory, against plain Get; sampled, time-bounded.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EntryTypeAction } from '../plugin/store/immudb-types.js';
import { verifyVerifiableEntry, type TrustedState } from '../plugin/store/proofs/index.js';
import { TrustedStateStore } from '../plugin/store/trusted-state.js';
import { AuditReader } from '../plugin/reader/audit-reader.js';
import { verifyAllCovered } from '../plugin/workbench/coverage.js';
import { auditRecords, fixturePool } from './lib/payloads.js';
import { CpuMeter } from './lib/proc.js';
import type { BenchContext, BenchResult } from './lib/report.js';
import { startBenchImmudb } from './lib/stack.js';
import { median, perSecond, ratio } from './lib/stats.js';

const PREFIX = 'audit';
const DB = 'bench_verify';
const TX_SIZE = 1024;

interface Mode {
  mode: string;
  round?: number;
  entries: number;
  ms: number;
  cpu: Record<string, number>;
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const total = ctx.quick ? 25_600 : 100_000;
  const sampleMs = ctx.quick ? 1200 : 2000;
  const immudb = await startBenchImmudb();
  const stateDirs: string[] = [];
  const newStateDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'kia-bench-auditor-'));
    stateDirs.push(d);
    return d;
  };
  try {
    const client = await immudb.connect(DB);
    const meter = new CpuMeter({ bench: process.pid, immudb: immudb.pid });
    const modes: Mode[] = [];
    const measure = async (mode: string, fn: () => Promise<number>): Promise<Mode> => {
      meter.lap();
      const t0 = performance.now();
      const entries = await fn();
      const m: Mode = { mode, entries, ms: performance.now() - t0, cpu: meter.lap() };
      modes.push(m);
      ctx.log(`verify: ${mode}: ${perSecond(entries, m.ms).toFixed(0)} entries/s`);
      return m;
    };

    // The data: `total` entries in transactions of 1024.
    const pool = fixturePool(1000);
    const ids: string[] = [];
    const write = await measure('write (Set, 1024 per tx)', async () => {
      let n = 0;
      while (n < total) {
        const recs = auditRecords(Math.min(TX_SIZE, total - n), PREFIX, pool);
        for (const r of recs) ids.push(r.id);
        await client.set(recs.map((r) => ({ key: r.key, value: r.value })));
        n += recs.length;
      }
      return n;
    });
    // Reads wait for immudb's index to catch up; let it before timing them.
    await client.get(Buffer.from(`${PREFIX}:entry:${ids[ids.length - 1]}`));
    const lastTx = Number((await client.currentState()).txId);

    // Whole history: plain TxScan and verify --all in alternated rounds (each verify --all by a
    // fresh auditor, opened outside the timed window: first contact, the whole range).
    const conn = { host: immudb.host, port: immudb.port, username: immudb.username, password: immudb.password, database: DB };
    const rounds = ctx.quick ? 3 : 5;
    const plainTxScan = () => measure('plain: TxScan, values included (8 txs per call)', async () => {
      let n = 0;
      for (let tx = 1; tx <= lastTx; ) {
        const txs = await client.txScan(tx, Math.min(8, lastTx - tx + 1), EntryTypeAction.RAW_VALUE);
        for (const t of txs) n += t.entries.length;
        tx += txs.length;
        if (!txs.length) break;
      }
      return n;
    });
    let verifyAllResult: { entries: number; transactions: number } | undefined;
    let auditorDir = '';
    const verifyAllRound = async () => {
      auditorDir = newStateDir();
      const reader = await AuditReader.open(conn, PREFIX, auditorDir);
      try {
        return await measure('verified: verify --all (TxScan + Alh chain + 1 dual proof + coverage, as the command runs it)', async () => {
          const { result: r } = await verifyAllCovered(reader, { fromTx: 1 });
          verifyAllResult = r;
          return r.entries;
        });
      } finally {
        await reader.close();
      }
    };
    const scans: Mode[] = [];
    const verifies: Mode[] = [];
    for (let round = 1; round <= rounds; round++) {
      // Plain first in odd rounds, verify --all first in even ones.
      for (const which of round % 2 ? ['plain', 'verify'] : ['verify', 'plain']) {
        const m = which === 'plain' ? await plainTxScan() : await verifyAllRound();
        m.round = round;
        (which === 'plain' ? scans : verifies).push(m);
      }
    }
    const keyScan = await measure('plain: key scan by prefix (1000 per call)', async () => {
      let n = 0;
      let seek: Buffer | undefined;
      for (;;) {
        const page = await client.scan(Buffer.from(`${PREFIX}:entry:`), { limit: 1000, ...(seek ? { seekKey: seek } : {}) });
        n += page.length;
        if (page.length < 1000) return n;
        seek = page[page.length - 1]!.key;
      }
    });
    const allTrusted = new TrustedStateStore(auditorDir).load(client.serverUuid, DB);

    // Single entries, sampled.
    const sample = Array.from({ length: 20_000 }, (_, i) => ids[(i * 7919) % ids.length]!);
    const timed = async (fn: (id: string) => Promise<void>) => {
      const deadline = performance.now() + sampleMs;
      let n = 0;
      while (n < sample.length && performance.now() < deadline) await fn(sample[n++]!);
      return n;
    };
    const get = await measure('plain: Get per entry', () => timed(async (id) => {
      await client.get(Buffer.from(`${PREFIX}:entry:${id}`));
    }));
    let trusted: TrustedState | undefined = allTrusted;
    const vget = await measure('verified: VerifiableGet + proofs per entry (state in memory)', () => timed(async (id) => {
      const key = Buffer.from(`${PREFIX}:entry:${id}`);
      const ve = await client.verifiableGet(key, trusted?.txId ?? 0);
      trusted = verifyVerifiableEntry(ve, trusted, { key });
    }));
    const cliReader = await AuditReader.open(conn, PREFIX, newStateDir());
    const cliVerify = await measure('verified: verify <id> (AuditReader.verify, state file per read)', () => timed(async (id) => {
      await cliReader.verify(id);
    }));
    await cliReader.close();

    const rate = (m: Mode) => perSecond(m.entries, m.ms);
    const fastest = (ms: Mode[]) => ms.reduce((a, b) => (rate(b) > rate(a) ? b : a));
    const txScan = fastest(scans);
    const verifyAll = fastest(verifies);
    const perRound = verifies.map((v) => ratio(rate(v), rate(scans.find((p) => p.round === v.round)!)));
    const span = (xs: number[]) => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;
    const cpuPer = (m: Mode, k: string) => (m.cpu[k]! * 1000) / m.entries;
    const row = (m: Mode, base?: Mode) => ({
      mode: m.round ? `${m.mode}, round ${m.round}` : m.mode,
      entries: m.entries,
      seconds: m.ms / 1000,
      'entries/s': rate(m),
      'vs plain': base ? ratio(rate(m), rate(base)) : undefined,
      'client CPU µs/entry': cpuPer(m, 'bench'),
      'immudb CPU µs/entry': cpuPer(m, 'immudb'),
    });
    return {
      name: 'verify',
      title: `3. Verification throughput over ${total.toLocaleString('en-US')} entries (${Math.ceil(total / TX_SIZE)} transactions of up to ${TX_SIZE})`,
      tables: [
        {
          title: `Whole history (every entry of every transaction), ${rounds} rounds alternated; "vs plain" within the round`,
          rows: [row(write), ...scans.flatMap((p) => [row(p), row(verifies.find((v) => v.round === p.round)!, p)]), row(keyScan)],
        },
        {
          title: 'verify --all / plain TxScan (issue 17, goal >= 0.8)',
          rows: [{ 'best / best': ratio(rate(verifyAll), rate(txScan)), 'per round': span(perRound), 'median of rounds': median(perRound) }],
        },
        { title: `Single entries, sampled for ${sampleMs / 1000} s each (entries spread over all transactions)`, rows: [row(get), row(vget, get), row(cliVerify, get)] },
      ],
      figures: {
        entries: total,
        transactions: lastTx,
        verifyAllEntriesPerSec: rate(verifyAll),
        verifyAllVsTxScan: ratio(rate(verifyAll), rate(txScan)),
        verifyAllVsTxScanPerRound: perRound,
        txScanEntriesPerSec: rate(txScan),
        verifiedGetPerSec: rate(vget),
        verifiedGetVsGet: ratio(rate(vget), rate(get)),
        cliVerifyPerSec: rate(cliVerify),
        verifyAllCounted: verifyAllResult,
      },
      targets: [],
      notes: [
        'every VerifiableGet answer lists the digests of all entries of the transaction (here 1024), and the check rebuilds eH from them: a single-entry verified read costs O(transaction size); batch size trades write speed against single-entry verification (see benchmark 5)',
      ],
    };
  } finally {
    await immudb.dispose();
    for (const d of stateDirs) rmSync(d, { recursive: true, force: true });
  }
}
