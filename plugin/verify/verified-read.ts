// Verified reads for auditors: read an entry with its proofs and check them against the
// auditor's own trusted state (the trusted session, shared with the writer), which advances
// only when every check passed.
import { ImmudbClient, ImmudbError, isKeyNotFoundError, type ImmudbConnectionOptions } from '../store/immudb-client.js';
import { TrustedSession } from '../store/trusted-session.js';
import { INITIAL_ALH, TxChain, verifyVerifiableEntry, verifyVerifiableTx, VerificationError } from '../store/proofs/index.js';
import { EntryTypeAction } from '../store/immudb-types.js';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toSafeInt } from '../store/longs.js';
import { entryKey, kindPrefix, parseKey, traceIndexPrefix } from '../store/key-layout.js';

export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
}

export interface ReadResult {
  key: string;
  txId: number;
  value: Buffer;
  entry: unknown;
}

export interface VerifiedReadResult extends ReadResult {
  verified: true;
  serverUuid: string;
  /** The state trusted before this read (undefined on first contact) and after it. */
  trustedBefore: { txId: number } | undefined;
  trustedAfter: { txId: number; alh: string };
}

export interface VerifyAllResult {
  serverUuid: string;
  database: string;
  fromTx: number;
  toTx: number;
  transactions: number;
  /** Audit entries (keys under <prefix>:entry:) in the verified transactions. */
  entries: number;
  trustedTxId: number;
}

/** An audit entry of a verified transaction: its key and value as written (no store prefixes). */
export interface VerifiedEntry {
  key: Buffer;
  value: Buffer;
}
/**
 * Receives each transaction's audit entries once they are checked; `time`: the tx's timestamp in
 * ms. A returned promise is awaited before the walk goes on (a slower consumer holds it back).
 */
export type OnVerifiedEntries = (tx: { id: number; time: number }, entries: VerifiedEntry[]) => void | Promise<void>;


/** Transactions per TxScan call of `verifyAll` (halved while a page is too large for one message). */
const SCAN_PAGE_TXS = 8;
/** gRPC status of a message over the size limit. */
const GRPC_RESOURCE_EXHAUSTED = 8;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function checkAuditId(id: string): string {
  if (!UUID.test(id)) throw new Error(`not an audit id: ${JSON.stringify(id)} (expected a UUID such as 0190c8e2-7b1a-7c3d-9e4f-0123456789ab)`);
  return id.toLowerCase();
}

function parseValue(value: Buffer): unknown {
  try {
    return JSON.parse(value.toString('utf8'));
  } catch {
    return null;
  }
}


export class AuditReader {
  private constructor(
    private readonly client: ImmudbClient,
    private readonly prefix: string,
    private readonly stateDir: string,
    private readonly session: TrustedSession,
  ) {}

  /** `serverPublicKey`: PEM of immudb's state signing key; every proven state must be signed by it. */
  static async open(conn: ImmudbConnectionOptions, prefix: string, stateDir: string, serverPublicKey?: string): Promise<AuditReader> {
    const session = new TrustedSession({
      host: conn.host, port: conn.port, database: conn.database, stateDir, serverPublicKey,
      resetCommand: `immudb-audit trust reset --state-dir ${stateDir} --address ${conn.host}:${conn.port} --database ${conn.database}`,
      holder: 'auditor',
    });
    try {
      return new AuditReader(await ImmudbClient.connect(conn), prefix, stateDir, session);
    } catch (e) {
      if (!(e instanceof ImmudbError && /database does not exist/i.test(e.details ?? e.message))) throw e;
      const known = session.knownIdentity();
      if (known) {
        throw new VerificationError(
          `database ${conn.database} does not exist on immudb at ${conn.host}:${conn.port}, but this auditor verified entries in it on server ${known}: the server was replaced or the database removed`,
        );
      }
      throw e;
    }
  }

  /** A plain (unverified) read. */
  async get(auditId: string): Promise<ReadResult> {
    const key = entryKey(this.prefix, checkAuditId(auditId));
    try {
      const e = await this.client.get(Buffer.from(key));
      return { key, txId: toSafeInt(e.tx, 'tx id'), value: e.value, entry: parseValue(e.value) };
    } catch (err) {
      if (isKeyNotFoundError(err)) throw new NotFoundError(`audit entry ${auditId} not found in immudb database ${this.client.database} (key ${key})`);
      throw err;
    }
  }

  /**
   * What the trace index lists under a trace (a prefix scan of `<prefix>:trace:<trace id>:`, not
   * a scan of everything): the audit ids, and keys under that prefix that are not index keys.
   * Unverified: plugin/verify/find-trace.ts checks each entry's own trace_id.
   */
  async findByTrace(traceId: string): Promise<{ ids: string[]; strays: string[] }> {
    const t = traceId.toLowerCase();
    if (!/^[0-9a-f]{32}$/.test(t)) throw new Error(`not a trace id: ${JSON.stringify(traceId)} (expected 32 hex characters)`);
    const ids: string[] = [];
    const strays: string[] = [];
    for (const e of await this.client.scanPrefix(Buffer.from(traceIndexPrefix(this.prefix, t)))) {
      const k = parseKey(e.key);
      if (k?.kind === 'trace' && k.prefix === this.prefix && k.traceId === t) ids.push(k.id);
      else strays.push(e.key.toString('utf8'));
    }
    return { ids, strays };
  }

  /** A verified read: inclusion of the entry in its tx, and the tx consistent with our state. */
  async verify(auditId: string): Promise<VerifiedReadResult> {
    const key = entryKey(this.prefix, checkAuditId(auditId));
    const uuid = this.client.serverUuid;
    const { database } = this.client.options;
    this.session.bind(uuid);
    const trusted = this.session.trusted;
    let ve;
    try {
      ve = await this.client.verifiableGet(Buffer.from(key), this.session.provenSince());
    } catch (err) {
      if (isKeyNotFoundError(err)) throw new NotFoundError(`audit entry ${auditId} not found in immudb database ${database} (key ${key})`);
      if (trusted) {
        const current = await this.client.currentState().then((s) => toSafeInt(s.txId, 'tx id')).catch(() => undefined);
        if (current !== undefined) this.session.refuseRollback(current);
      }
      throw err;
    }
    const next = verifyVerifiableEntry(ve, this.session.anchor(), { key: Buffer.from(key) });
    const entry = ve.entry!;
    await this.session.accept(this.client.serverUuid, next, ve.verifiableTx?.signature);
    const after = this.session.trusted!;
    return {
      key,
      txId: toSafeInt(entry.tx, 'tx id'),
      value: entry.value,
      entry: parseValue(entry.value),
      verified: true,
      serverUuid: uuid,
      trustedBefore: trusted ? { txId: trusted.txId } : undefined,
      trustedAfter: { txId: after.txId, alh: after.alh.toString('hex') },
    };
  }

  /**
   * Audits history: verifies every transaction after the last audited one (or `fromTx`) up to
   * the server's current state, and stops at the first inconsistency with a VerificationError
   * naming the transaction. One dual proof links the last transaction to this auditor's trusted
   * state (and carries the server's signature when a key is configured); the transactions are
   * read with TxScan, their entries (values included) checked against their headers' eH, and
   * their headers checked as one Alh chain that must end in the proven Alh (TxChain). The
   * trusted state and the checkpoint advance only when everything held. Counts the audit
   * entries found under the prefix; `onTx` sees each transaction once its entries and its link
   * to the one before are checked (the range as a whole holds only when this returns);
   * `onEntries` likewise gets its audit entries (for the auditor's index, plugin/workbench).
   */
  async verifyAll(opts: { fromTx?: number; onTx?: (txId: number, entries: number) => void; onEntries?: OnVerifiedEntries } = {}): Promise<VerifyAllResult> {
    const uuid = this.client.serverUuid;
    const { database } = this.client.options;
    this.session.bind(uuid);
    const trusted = this.session.trusted;
    const checkpointFile = join(this.stateDir, uuid, `${database}.audited.json`);
    let lastAudited = 0;
    try {
      lastAudited = (JSON.parse(readFileSync(checkpointFile, 'utf8')) as { last_tx: number }).last_tx;
    } catch {
      lastAudited = 0;
    }
    const from = opts.fromTx ?? lastAudited + 1;
    const current = toSafeInt((await this.client.currentState()).txId, 'current tx id');
    this.session.refuseRollback(current);
    const first = Math.max(1, from);
    if (first > current) {
      return { serverUuid: uuid, database, fromTx: from, toTx: current, transactions: 0, entries: 0, trustedTxId: trusted?.txId ?? 0 };
    }

    // 1. The end of the range, proven against the trusted state (on first contact: against
    //    itself, as every first verified read is).
    const vtx = await this.client.verifiableTxById(current, this.session.provenSince(), EntryTypeAction.EXCLUDE);
    let end;
    try {
      end = verifyVerifiableTx(vtx, this.session.anchor(), { listedEntries: 'none' });
      if (end.txId !== current) throw new VerificationError(`asked for tx ${current}, immudb proved tx ${end.txId}`);
      this.session.checkSigned(end, vtx.signature);
    } catch (e) {
      throw new VerificationError(`tx ${current}: ${(e as Error).message}`);
    }

    // 2. Every transaction of the range, as one Alh chain: anchored at its start when the Alh
    //    before it is known (tx 1, or the trusted tx right before the range), checked against
    //    the trusted Alh where it passes the trusted tx, and ending in the proven Alh.
    const anchor = first === 1 ? INITIAL_ALH : trusted?.txId === first - 1 ? trusted.alh : undefined;
    const chain = new TxChain(first, anchor);
    if (trusted && trusted.txId >= first) chain.expectAlh(trusted.txId, trusted.alh);
    const entryPrefix = Buffer.from(kindPrefix(this.prefix, 'entry'));
    let entries = 0;
    let page = SCAN_PAGE_TXS;
    while (chain.nextTxId <= current) {
      const start = chain.nextTxId;
      const limit = Math.min(page, current - start + 1);
      let txs;
      try {
        txs = await this.client.txScan(start, limit, EntryTypeAction.RAW_VALUE);
      } catch (e) {
        // A page too large for one message: fewer transactions per call.
        if (limit > 1 && e instanceof ImmudbError && e.code === GRPC_RESOURCE_EXHAUSTED) {
          page = limit >> 1;
          continue;
        }
        throw e;
      }
      if (!txs?.length) throw new VerificationError(`tx ${start}: the scan returned no transactions, but the server reports tx ${current}`);
      for (const tx of txs.slice(0, limit)) {
        const { header } = chain.append(tx);
        let n = 0;
        const audit: VerifiedEntry[] | undefined = opts.onEntries ? [] : undefined;
        tx.entries.forEach((e, i) => {
          if (!e.key.subarray(1).subarray(0, entryPrefix.length).equals(entryPrefix)) return;
          // Audit entries are checked by their values (the chain checked the values it got).
          if (!e.value?.length) throw new VerificationError(`tx ${header.id} entry ${i} (${e.key.subarray(1).toString()}): its value was not sent`);
          n++;
          // Keys and values as stored carry a one-byte prefix (plain key, plain value).
          audit?.push({ key: e.key.subarray(1), value: e.value.subarray(1) });
        });
        entries += n;
        opts.onTx?.(header.id, n);
        if (audit?.length) await opts.onEntries!({ id: header.id, time: Number(header.ts) * 1000 }, audit);
      }
    }
    chain.finish(current, end.alh);

    // 3. Everything held: the trusted state and the checkpoint advance.
    await this.session.advance(this.client.serverUuid, end);
    mkdirSync(join(this.stateDir, uuid), { recursive: true, mode: 0o700 });
    writeFileSync(`${checkpointFile}.tmp`, JSON.stringify({ last_tx: current, at: new Date().toISOString() }) + '\n', { mode: 0o600 });
    renameSync(`${checkpointFile}.tmp`, checkpointFile);
    return { serverUuid: uuid, database, fromTx: from, toTx: current, transactions: current - first + 1, entries, trustedTxId: end.txId };
  }

  close(): Promise<void> {
    return this.client.close();
  }

  /** The identity (immudb-uuid) of the server this reader is connected to. */
  get serverUuid(): string {
    return this.client.serverUuid;
  }
}
