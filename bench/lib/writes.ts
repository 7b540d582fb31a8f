// Direct writes through our gRPC client (no plugin server): the raw ceiling, the naive design,
// and the rungs between them, each measured by entries per second and this process's CPU.
import type { AuditRecord } from '../../plugin/capture/encode.js';
import type { ImmudbClient } from '../../plugin/store/immudb-client.js';
import { verifyVerifiableSet, type TrustedState } from '../../plugin/store/proofs/index.js';
import { TrustedStateStore } from '../../plugin/store/trusted-state.js';
import { writerKvs } from './payloads.js';

export type WriteMode =
  /** Set: one transaction per batch, no preconditions, no proof. */
  | 'set'
  /** Set with keyMustNotExist per entry (what the plugin asks immudb to check). */
  | 'set+preconditions'
  /** VerifiableSet with preconditions, proof received but not checked. */
  | 'verifiableSet'
  /** ...and checked with our proof code (verifyVerifiableSet), state kept in memory. */
  | 'verifiableSet+verify'
  /** ...and the trusted state persisted (fsync) after each batch, as AuditWriter does. */
  | 'verifiableSet+verify+save';

export interface WriteRun {
  mode: WriteMode;
  batch: number;
  entries: number;
  ms: number;
  /** CPU of this process per entry, µs (the client side: gRPC, protobuf, proofs, fsync). */
  cpuUsPerEntry: number;
  /** Wall time per batch call, ms (median of the calls). */
  batchMs: number[];
}

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/**
 * Writes `records` (audit entries; counted as such) in batches of `batch`, one call in flight (as the plugin's writer), until all
 * are written or `maxMs` passed. The state for the verified modes starts at the server's current one.
 */
export async function writeBatches(client: ImmudbClient, records: readonly AuditRecord[], batch: number, mode: WriteMode, maxMs: number, stateDir?: string): Promise<WriteRun> {
  let trusted: TrustedState | undefined;
  const verified = mode.startsWith('verifiableSet');
  const states = mode === 'verifiableSet+verify+save' && stateDir ? new TrustedStateStore(stateDir) : undefined;
  if (verified) {
    // Anchor: a first verified write of one entry (not counted) gives a state to prove against.
    const kv = { key: Buffer.from(`anchor:${process.hrtime.bigint()}:${Math.random()}`), value: Buffer.from('{}') };
    trusted = verifyVerifiableSet(await client.verifiableSet([kv], 0), [kv], undefined);
  }
  const batchMs: number[] = [];
  let done = 0;
  const c0 = cpuUs();
  const t0 = performance.now();
  while (done < records.length && performance.now() - t0 < maxMs) {
    const slice = records.slice(done, done + batch);
    // The same key-values the plugin's writer sends (each entry with its trace-index key).
    const kvs = await writerKvs(slice);
    const pre = mode === 'set' ? [] : slice.map((r) => ({ keyMustNotExist: { key: r.key } }));
    const tb = performance.now();
    if (!verified) {
      await client.set(kvs, pre);
    } else {
      const vtx = await client.verifiableSet(kvs, trusted!.txId, pre);
      if (mode !== 'verifiableSet') {
        trusted = verifyVerifiableSet(vtx, kvs, trusted);
        await states?.save({ log: client.database, serverUuid: client.serverUuid, database: client.database, txId: trusted.txId, alh: trusted.alh });
      } else {
        trusted = { txId: Number(vtx.tx!.header!.id), alh: trusted!.alh };
      }
    }
    batchMs.push(performance.now() - tb);
    done += slice.length;
  }
  const ms = performance.now() - t0;
  return { mode, batch, entries: done, ms, cpuUsPerEntry: (cpuUs() - c0) / Math.max(1, done), batchMs };
}

/** The naive design: one VerifiableSet per entry, each proof checked (state in memory). */
export async function naiveVerifiedSets(client: ImmudbClient, records: readonly AuditRecord[], maxMs: number): Promise<WriteRun> {
  return writeBatches(client, records, 1, 'verifiableSet+verify', maxMs);
}
