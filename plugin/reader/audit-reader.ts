// Verified reads for auditors: read an entry with its proofs and check them against the
// auditor's own trusted state (the trusted session, shared with the writer), which advances
// only when every check passed.
import { ImmudbClient, ImmudbError, isKeyNotFoundError, type ImmudbConnectionOptions } from '../store/immudb-client.js';
import { BehindError, TrustedSession, type TrustedState } from '../store/trusted-session.js';
import { verifyVerifiableEntry, verifyVerifiableTx, VerificationError } from '../store/proofs/index.js';
import { ChainWalk, type VerifiedEntry } from './chain-walk.js';
import { checkTime, firstAtOrAfter } from './time-range.js';
import { EntryTypeAction } from '../store/immudb-types.js';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toSafeInt } from '../store/longs.js';
import { coverageRecordsPrefix, entryKey, kindPrefix, parseKey, traceIndexPrefix } from '../store/key-layout.js';

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
  /** No state of the log was trusted before this reader opened (trust on first use). */
  firstContact: boolean;
}

export interface VerifyAllResult {
  serverUuid: string;
  database: string;
  /** The range asked for (transactions fromTx..toTx); empty when fromTx > toTx. */
  fromTx: number;
  toTx: number;
  transactions: number;
  /** Audit entries (keys under <prefix>:entry:) in the verified transactions. */
  entries: number;
  trustedTxId: number;
  /** The server's current tx when the audit started. */
  currentTx: number;
  /** No state of the log was trusted before this reader opened (trust on first use). */
  firstContact: boolean;
  /** The checkpoint after this run: every tx up to it was audited (0: none). */
  checkpoint: number;
  /** The transactions walked (the range, and for a time range the one on each side of it). */
  walkedFrom?: number;
  walkedTo?: number;
  /** Commit times (ms, verified) of the range's first and last transactions. */
  firstTime?: number | undefined;
  lastTime?: number | undefined;
  /** Commit time (ms, verified) of the server's current tx, when the walk reached it. */
  lastTxTime?: number | undefined;
  /** The time range asked for (ms): since inclusive, until exclusive. */
  since?: number | undefined;
  until?: number | undefined;
}

export interface VerifyAllOptions {
  /** Start at this tx instead of the checkpoint. */
  fromTx?: number;
  /** Only transactions committed at or after this time (ms since the epoch). */
  since?: number;
  /** Only transactions committed before this time (ms since the epoch). */
  until?: number;
  /** Told the range before the walk starts. */
  onRange?: (range: { fromTx: number; toTx: number; transactions: number }) => void;
  onTx?: (txId: number, entries: number) => void;
  onEntries?: OnVerifiedEntries;
  /** The lifecycle entries and loss records under the prefix, checked like audit entries (coverage reports). */
  onLifecycle?: OnVerifiedEntries;
}

export type { VerifiedEntry } from './chain-walk.js';
/**
 * Receives each transaction's audit entries once they are checked; `time`: the tx's timestamp in
 * ms. A returned promise is awaited before the walk goes on (a slower consumer holds it back).
 */
export type OnVerifiedEntries = (tx: { id: number; time: number }, entries: VerifiedEntry[]) => void | Promise<void>;

/** A tx and its Alh that trust is pinned to (--trust-anchor, an evidence checkpoint). */
export interface TrustAnchor {
  txId: number;
  alh: Buffer;
}

/** Parses `<tx>:<alh as 64 hex characters>`. */
export function parseTrustAnchor(text: string): TrustAnchor {
  const m = /^(\d{1,15}):([0-9a-fA-F]{64})$/.exec(text.trim());
  const txId = m ? Number(m[1]) : 0;
  if (!m || !Number.isSafeInteger(txId) || txId < 1) throw new Error(`not a trust anchor: ${JSON.stringify(text)} (expected <tx>:<Alh>, e.g. 42:${'0'.repeat(64)})`);
  return { txId, alh: Buffer.from(m[2]!, 'hex') };
}

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
      onNotice: (m, kind) => kind === 'damaged-copy' && process.stderr.write(`immudb-audit: WARNING: ${m}\n`),
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
   * Unverified: plugin/reader/find-trace.ts checks each entry's own trace_id.
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
      firstContact: this.before === undefined,
    };
  }

  /**
   * Audits history: verifies every transaction of a range and stops at the first inconsistency
   * with a VerificationError naming the transaction. The range runs from the one after the last
   * audited (the checkpoint), `fromTx`, or the first committed at or after `since`, up to the
   * server's current state or the last committed before `until`. One dual proof links the end
   * of the walk to this auditor's trusted state (signed when a key is configured), and the
   * transactions are checked as one Alh chain ending in the proven Alh (ChainWalk). Times map to
   * transactions through the headers' commit times, which the chain verifies (decisions #24).
   * The trusted state advances to the proven end when newer; the checkpoint only when the walk
   * continues the audited history without a gap. Counts the audit entries under the prefix;
   * `onTx` sees each transaction of the range once its entries and its link to the one before
   * are checked (the range as a whole holds only when this returns); `onEntries` likewise gets its
   * audit entries (for the auditor's index, plugin/workbench), `onLifecycle` its lifecycle
   * entries (coverage reports, plugin/workbench/coverage.ts); `onRange` is told the range first.
   */
  async verifyAll(opts: VerifyAllOptions = {}): Promise<VerifyAllResult> {
    const uuid = this.client.serverUuid;
    const { database } = this.client.options;
    const trusted = this.session.trusted;
    const firstContact = this.before === undefined;
    const lastAudited = this.readCheckpoint();
    const { since, until } = opts;
    const timed = since !== undefined || until !== undefined;
    const current = toSafeInt((await this.client.currentState()).txId, 'current tx id');
    this.session.refuseRollback(current, { serverUuid: uuid, address: this.address });
    const walker = new ChainWalk(this.client, this.session, Buffer.from(kindPrefix(this.prefix, 'entry')), opts.onLifecycle ? Buffer.from(coverageRecordsPrefix(this.prefix)) : undefined);
    const base = { serverUuid: uuid, database, currentTx: current, firstContact, since, until };

    // The range [a, b]: transactions with ids a..b (by time, through commit times the server
    // claims; checked in the walk below).
    const claimed = new Map<number, number>();
    const claim = async (id: number) => {
      const t = await walker.claimedTime(id);
      claimed.set(id, t);
      return t;
    };
    const from = opts.fromTx ?? (since === undefined ? lastAudited + 1 : 1);
    const a = since !== undefined && current > 0 ? await firstAtOrAfter(claim, 1, current, since) : Math.max(1, from);
    const b = until !== undefined && current > 0 ? (await firstAtOrAfter(claim, 1, current, until)) - 1 : current;
    // The walk: the range plus, for a time range, the transaction on each side of it, whose
    // verified times show that the range is all of the window.
    const w0 = since !== undefined ? Math.min(Math.max(1, a - 1), current) : a;
    const w1 = until !== undefined ? Math.max(1, Math.min(current, b + 1)) : current;
    const empty = { ...base, fromTx: timed ? a : from, toTx: timed ? b : current, transactions: 0, entries: 0, trustedTxId: trusted?.txId ?? 0, checkpoint: lastAudited };
    if (current === 0 || w0 > w1 || (!timed && a > current)) return empty;
    opts.onRange?.({ fromTx: a, toTx: b, transactions: Math.max(0, b - a + 1) });

    const end = await walker.prove(w1);
    let entries = 0;
    let prevTime: number | undefined;
    let firstTime: number | undefined;
    let lastTime: number | undefined;
    const inWindow = (t: number) => (since === undefined || t >= since) && (until === undefined || t < until);
    await walker.walk(w0, { txId: w1, alh: end.tx.alh }, async (tx) => {
      if (timed) checkTime(tx, claimed.get(tx.id), prevTime, inWindow(tx.time), tx.id >= a && tx.id <= b);
      prevTime = tx.time;
      if (tx.id < a || tx.id > b) return;
      firstTime ??= tx.time;
      lastTime = tx.time;
      entries += tx.entries.length;
      opts.onTx?.(tx.id, tx.entries.length);
      if (opts.onEntries && tx.entries.length) await opts.onEntries({ id: tx.id, time: tx.time }, tx.entries);
      if (opts.onLifecycle && tx.lifecycle.length) await opts.onLifecycle({ id: tx.id, time: tx.time }, tx.lifecycle);
    });

    // Everything held: the trusted state advances (when newer), and the checkpoint when this
    // walk continues the audited history (it then holds every tx up to w1).
    await this.session.advance(this.client.serverUuid, end.state, this.address);
    let checkpoint = lastAudited;
    if (w0 <= lastAudited + 1 && w1 > lastAudited) {
      this.writeCheckpoint(w1);
      checkpoint = w1;
    }
    return {
      ...base, fromTx: timed ? a : from, toTx: b, transactions: Math.max(0, b - a + 1), entries, trustedTxId: this.session.trusted!.txId,
      checkpoint, walkedFrom: w0, walkedTo: w1, firstTime, lastTime, lastTxTime: w1 === current ? end.tx.time : undefined,
    };
  }

  /** The checkpoint file of the log, next to its state (an earlier version kept it per server). */
  private get checkpointFile(): string {
    return join(this.stateDir, 'logs', `${this.session.log}.audited.json`);
  }

  /** The last tx every tx up to which this auditor audited (0: none). */
  private readCheckpoint(): number {
    const read = (file: string) => (JSON.parse(readFileSync(file, 'utf8')) as { last_tx: number }).last_tx;
    try {
      return read(this.checkpointFile);
    } catch {
      try {
        // An earlier version's checkpoint, kept per server: the one whose state was migrated.
        const legacy = this.session.migratedFrom ?? this.before?.serverUuid;
        return legacy ? read(join(this.stateDir, legacy, `${this.client.options.database}.audited.json`)) : 0;
      } catch {
        return 0;
      }
    }
  }

  private writeCheckpoint(lastTx: number): void {
    const file = this.checkpointFile;
    mkdirSync(join(this.stateDir, 'logs'), { recursive: true, mode: 0o700 });
    writeFileSync(`${file}.tmp`, JSON.stringify({ last_tx: lastTx, at: new Date().toISOString() }) + '\n', { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  }

  /**
   * The server's current tx id as it says it (no proof: opening this reader proved that the
   * server's history extends the trusted state, so a smaller answer than that was refused).
   */
  async currentTxId(): Promise<number> {
    return toSafeInt((await this.client.currentState()).txId, 'current tx id');
  }

  /** Whether any key exists under `<prefix>:entry:` (a plain scan: a hint for messages, not a proof). */
  async anyAuditEntry(): Promise<boolean> {
    return (await this.client.scan(Buffer.from(kindPrefix(this.prefix, 'entry')), { limit: 1 })).length > 0;
  }

  /**
   * Pins trust to `anchor` (a tx and its Alh, from `--trust-anchor` or an evidence checkpoint):
   * the server must prove, with a dual proof, that its history holds that tx with that Alh. On
   * first contact its current state, proven from the anchor, becomes the trusted state; with a
   * trusted state, the anchor and that state must be one history (the later proven from the
   * earlier), and the state advances to the anchor when it is later. Any failure is a
   * VerificationError.
   */
  async checkTrustAnchor(anchor: TrustAnchor): Promise<{ trusted: { txId: number; alh: Buffer } }> {
    const uuid = this.client.serverUuid;
    const where = `immudb at ${this.address} (server ${uuid})`;
    const tag = `trust anchor tx ${anchor.txId} Alh ${anchor.alh.toString('hex')}`;
    const n = toSafeInt((await this.client.currentState()).txId, 'current tx id');
    this.session.refuseRollback(n, { serverUuid: uuid, address: this.address });
    if (anchor.txId > n) throw new VerificationError(`${where} reports tx ${n}, before the ${tag}: its history is shorter than the anchored one (rolled back, replaced, or not this log)`);
    const t = this.session.trusted;
    const prove = async (tx: number, from: { txId: number; alh: Buffer }) => {
      const vtx = await this.client.verifiableTxById(tx, from.txId, EntryTypeAction.EXCLUDE);
      let next;
      try {
        next = verifyVerifiableTx(vtx, from, { listedEntries: 'none' });
        if (next.txId !== Math.max(tx, from.txId)) throw new VerificationError(`asked for tx ${tx}, immudb proved tx ${next.txId}`);
      } catch (e) {
        throw new VerificationError(`${where} does not hold the ${tag}: ${(e as Error).message}`);
      }
      this.session.checkSigned(next, vtx.signature);
      return next;
    };
    if (!t) {
      const next = await prove(n, anchor);
      await this.session.advance(uuid, next, this.address);
    } else if (anchor.txId <= t.txId) {
      const next = await prove(t.txId, anchor);
      if (!next.alh.equals(t.alh)) {
        throw new VerificationError(`the ${tag} and this auditor's trusted state (tx ${t.txId}) are not one history on ${where}`);
      }
    } else {
      const next = await prove(anchor.txId, { txId: t.txId, alh: t.alh });
      if (!next.alh.equals(anchor.alh)) {
        throw new VerificationError(`${where} does not hold the ${tag}: its tx ${anchor.txId}, proven from this auditor's trusted state (tx ${t.txId}), has Alh ${next.alh.toString('hex')}`);
      }
      await this.session.advance(uuid, next, this.address);
    }
    return { trusted: { txId: this.session.trusted!.txId, alh: this.session.trusted!.alh } };
  }

  close(): Promise<void> {
    return this.client.close();
  }

  /**
   * The admitted connection and its trusted session, for the evidence commands
   * (plugin/evidence/collect.ts), which ask for proofs of their own and check them here.
   */
  get proofSource(): { client: ImmudbClient; session: TrustedSession } {
    return { client: this.client, session: this.session };
  }

  /** The identity (immudb-uuid) of the server this reader is connected to. */
  get serverUuid(): string {
    return this.client.serverUuid;
  }
}
