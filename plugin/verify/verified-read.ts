// Verified reads for auditors: read an entry with its proofs and check them against the
// auditor's own trusted state (the trusted session, shared with the writer), which advances
// only when every check passed.
import { ImmudbClient, ImmudbError, isKeyNotFoundError, type ImmudbConnectionOptions } from '../store/immudb-client.js';
import { BehindError, TrustedSession, type TrustedState } from '../store/trusted-session.js';
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


export interface ReaderTarget {
  /** Every address that may serve the log (primary, replicas): the first that proves it holds the log is read. */
  addresses?: Array<{ host: string; port: number }>;
  /** The log's name (decisions #23); default: the database. */
  log?: string;
  /** PEM of immudb's state signing key; every proven state must be signed by it. */
  serverPublicKey?: string | undefined;
}

export class AuditReader {
  private constructor(
    private readonly client: ImmudbClient,
    private readonly prefix: string,
    private readonly stateDir: string,
    private readonly session: TrustedSession,
    private readonly before: TrustedState | undefined,
  ) {}

  /** The state trusted when this reader opened (undefined: first contact). */
  get trustedBefore(): TrustedState | undefined {
    return this.before;
  }

  /**
   * `trust move`: the server's current state, proven against the trusted one (a dual proof,
   * signed when a key is configured), becomes the trusted state, recorded with this server.
   */
  async moveHere(): Promise<{ before: TrustedState | undefined; after: TrustedState; serverUuid: string; address: string }> {
    const t = this.session.anchor();
    const n = toSafeInt((await this.client.currentState()).txId, 'current tx id');
    this.session.refuseRollback(n, { serverUuid: this.client.serverUuid, address: this.address });
    const vtx = await this.client.verifiableTxById(n, this.session.provenSince(), EntryTypeAction.EXCLUDE);
    const next = verifyVerifiableTx(vtx, t, { listedEntries: 'none' });
    await this.session.accept(this.client.serverUuid, next, vtx.signature ?? null, this.address);
    return { before: this.before, after: this.session.trusted!, serverUuid: this.client.serverUuid, address: this.address };
  }

  private get address(): string {
    return `${this.client.options.host}:${this.client.options.port}`;
  }

  /**
   * Opens the first address (in order) that answers and proves its history extends this
   * auditor's trusted state of the log. A fork anywhere fails at once; a server that lags is
   * passed over for the next address (and reported when none is better).
   */
  static async open(conn: ImmudbConnectionOptions, prefix: string, stateDir: string, target: ReaderTarget = {}): Promise<AuditReader> {
    const addresses = target.addresses?.length ? target.addresses : [{ host: conn.host, port: conn.port }];
    const log = target.log ?? conn.database;
    const first = addresses[0]!;
    const session = new TrustedSession({
      log, database: conn.database, addresses, stateDir, serverPublicKey: target.serverPublicKey,
      resetCommand: `immudb-audit trust reset --state-dir ${stateDir} --address ${first.host}:${first.port} --database ${conn.database}${log !== conn.database ? ` --log ${log}` : ''}`,
      holder: 'auditor',
    });
    const before = await session.load();
    let lastError: unknown;
    for (const a of addresses) {
      let client: ImmudbClient | undefined;
      try {
        client = await ImmudbClient.connect({ ...conn, host: a.host, port: a.port });
        const c = client;
        await session.admit({
          serverUuid: c.serverUuid,
          address: `${a.host}:${a.port}`,
          currentTxId: async () => toSafeInt((await c.currentState()).txId, 'current tx id'),
          proveTx: (tx, since) => c.verifiableTxById(tx, since, EntryTypeAction.EXCLUDE),
        });
        return new AuditReader(c, prefix, stateDir, session, before);
      } catch (e) {
        await client?.close().catch(() => undefined);
        if (e instanceof VerificationError && !(e instanceof BehindError)) throw e;
        if (e instanceof ImmudbError && /database does not exist/i.test(e.details ?? e.message)) {
          const trusted = await session.load();
          if (trusted) {
            e.message = `database ${conn.database} does not exist on immudb at ${a.host}:${a.port}, but this auditor verified tx ${trusted.txId} of log ${log} on server ${trusted.serverUuid}: the server was replaced or the database removed`;
            lastError = lastError instanceof BehindError ? lastError : new VerificationError(e.message);
            continue;
          }
        }
        if (!(lastError instanceof VerificationError)) lastError = e;
      }
    }
    throw lastError;
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
    const trusted = this.session.trusted;
    let ve;
    try {
      ve = await this.client.verifiableGet(Buffer.from(key), this.session.provenSince());
    } catch (err) {
      if (isKeyNotFoundError(err)) throw new NotFoundError(`audit entry ${auditId} not found in immudb database ${database} (key ${key})`);
      if (trusted) {
        const current = await this.client.currentState().then((s) => toSafeInt(s.txId, 'tx id')).catch(() => undefined);
        if (current !== undefined) this.session.refuseRollback(current, { serverUuid: uuid, address: this.address });
      }
      throw err;
    }
    const next = verifyVerifiableEntry(ve, this.session.anchor(), { key: Buffer.from(key) });
    const entry = ve.entry!;
    await this.session.accept(this.client.serverUuid, next, ve.verifiableTx?.signature ?? null, this.address);
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
   * `onEntries` likewise gets its audit entries (for the auditor's index, plugin/workbench),
   * `onLifecycle` its lifecycle entries (coverage reports, plugin/workbench/coverage.ts).
   */
  async verifyAll(opts: { fromTx?: number; onTx?: (txId: number, entries: number) => void; onEntries?: OnVerifiedEntries; onLifecycle?: OnVerifiedEntries } = {}): Promise<VerifyAllResult> {
    const uuid = this.client.serverUuid;
    const { database } = this.client.options;
    const trusted = this.session.trusted;
    // The checkpoint belongs to the log, next to its state; an earlier version kept it per server.
    const checkpointDir = join(this.stateDir, 'logs');
    const checkpointFile = join(checkpointDir, `${this.session.log}.audited.json`);
    const readCheckpoint = (file: string) => (JSON.parse(readFileSync(file, 'utf8')) as { last_tx: number }).last_tx;
    let lastAudited = 0;
    try {
      lastAudited = readCheckpoint(checkpointFile);
    } catch {
      try {
        // An earlier version's checkpoint, kept per server: the one whose state was migrated.
        const legacy = this.session.migratedFrom ?? trusted?.serverUuid;
        lastAudited = legacy ? readCheckpoint(join(this.stateDir, legacy, `${database}.audited.json`)) : 0;
      } catch {
        lastAudited = 0;
      }
    }
    const from = opts.fromTx ?? lastAudited + 1;
    const current = toSafeInt((await this.client.currentState()).txId, 'current tx id');
    this.session.refuseRollback(current, { serverUuid: uuid, address: this.address });
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
    const lifecyclePrefix = Buffer.from(kindPrefix(this.prefix, 'lifecycle'));
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
        const lifecycle: VerifiedEntry[] | undefined = opts.onLifecycle ? [] : undefined;
        tx.entries.forEach((e, i) => {
          if (!e.key.subarray(1).subarray(0, entryPrefix.length).equals(entryPrefix)) {
            // Coverage (plugin/workbench/coverage.ts): lifecycle entries, checked like entries.
            if (lifecycle && e.value?.length && e.key.subarray(1).subarray(0, lifecyclePrefix.length).equals(lifecyclePrefix)) lifecycle.push({ key: e.key.subarray(1), value: e.value.subarray(1) });
            return;
          }
          // Audit entries are checked by their values (the chain checked the values it got).
          if (!e.value?.length) throw new VerificationError(`tx ${header.id} entry ${i} (${e.key.subarray(1).toString()}): its value was not sent`);
          n++;
          // Keys and values as stored carry a one-byte prefix (plain key, plain value).
          audit?.push({ key: e.key.subarray(1), value: e.value.subarray(1) });
        });
        entries += n;
        opts.onTx?.(header.id, n);
        if (audit?.length) await opts.onEntries!({ id: header.id, time: Number(header.ts) * 1000 }, audit);
        if (lifecycle?.length) await opts.onLifecycle!({ id: header.id, time: Number(header.ts) * 1000 }, lifecycle);
      }
    }
    chain.finish(current, end.alh);

    // 3. Everything held: the trusted state and the checkpoint advance.
    await this.session.advance(this.client.serverUuid, end, this.address);
    mkdirSync(checkpointDir, { recursive: true, mode: 0o700 });
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
