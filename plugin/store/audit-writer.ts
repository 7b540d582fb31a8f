// Verified batch writes: one immudb transaction per batch (VerifiableSet with every entry of the
// batch), accepted only when our own proof checks pass: the transaction holds exactly the
// entries we sent and extends the state we trusted before. Only then does the trusted state
// advance (through the trusted session). A replayed batch whose keys exist already counts only
// for the keys a verified read proves to hold exactly our value. A failed check, or a trusted
// state that cannot be used, halts the writer (entries stay spooled) and says so loudly.
import { basename, dirname } from 'node:path';
import { ImmudbClient, ImmudbError, isKeyExistsError, isKeyNotFoundError, type ImmudbConnectionOptions } from './immudb-client.js';
import { TrustedSession } from './trusted-session.js';
import { VerificationError, verifyVerifiableEntry, verifyVerifiableSet } from './proofs/index.js';
import { toSafeInt } from './longs.js';
import { traceIndexOf } from './key-layout.js';
import type { Logger } from '../log.js';

/** What the writer stores: a key and its value (the audit record as encoded once). */
export interface KeyValue {
  key: Buffer;
  value: Buffer;
}

export interface WriteResult {
  /** Transaction holding the batch (0 when every entry was already stored). */
  txId: number;
  /** Entries written by this call. */
  written: number;
  /** Entries found already stored (a replay), proven by verified reads, left as they were. */
  duplicates: number;
}

export interface AuditWriterOptions {
  connection: ImmudbConnectionOptions;
  /** PEM public key of immudb's state signing key: every proven state must be signed by it. */
  serverPublicKey?: string | null;
  /** The writer's trusted state: `$IMMUDB_AUDIT_DATA_DIR/trusted-state`. */
  stateDir: string;
  logger: Logger;
}

/** The operator's command that resets this writer's trust (named in its halt messages). */
function resetCommand(stateDir: string, c: ImmudbConnectionOptions): string {
  const where = basename(stateDir) === 'trusted-state' ? `--data-dir ${dirname(stateDir)}` : `--state-dir ${stateDir}`;
  return `immudb-audit trust reset ${where} --address ${c.host}:${c.port} --database ${c.database}`;
}

export class AuditWriter {
  private client: ImmudbClient | undefined;
  private connecting: Promise<ImmudbClient> | undefined;
  private session: TrustedSession;
  private chain: Promise<unknown> = Promise.resolve();
  /** Set when a check failed; the writer then refuses every write until restarted. */
  halted: Error | undefined;
  lastTxId = 0;

  constructor(private readonly opts: AuditWriterOptions) {
    this.session = AuditWriter.trustedSession(opts);
  }

  private static trustedSession(opts: AuditWriterOptions): TrustedSession {
    const { host, port, database } = opts.connection;
    return new TrustedSession({
      host, port, database,
      stateDir: opts.stateDir,
      serverPublicKey: opts.serverPublicKey,
      resetCommand: resetCommand(opts.stateDir, opts.connection),
      holder: 'writer',
      onFirstContact: (m) => opts.logger.warn(m),
    });
  }

  /**
   * A configuration change for the same destination (host, port, database): new credentials,
   * TLS or server key. Applied between two writes (on the write chain), so no write races it;
   * the next write opens a new connection with them. The trusted state is the same files: the
   * new session loads it when the new connection binds. A malformed key throws here, before
   * anything changes.
   */
  reconfigure(connection: ImmudbConnectionOptions, serverPublicKey: string | null | undefined): Promise<void> {
    const next = { ...this.opts, connection, serverPublicKey };
    const session = AuditWriter.trustedSession(next);
    const run = this.chain.then(() => {
      this.opts.connection = next.connection;
      this.opts.serverPublicKey = next.serverPublicKey;
      this.session = session;
      this.dropClient();
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async connect(): Promise<ImmudbClient> {
    if (this.client) return this.client;
    // Every session the client opens (a restart can put another server behind the address)
    // is bound before any call uses it.
    this.connecting ??= ImmudbClient.connect({ ...this.opts.connection, checkIdentity: (uuid) => this.session.bind(uuid) }).finally(() => {
      this.connecting = undefined;
    });
    this.client = await this.connecting;
    return this.client;
  }

  private halt(err: Error) {
    if (!this.halted) {
      this.halted = err;
      this.opts.logger.error(`writer halted: ${err.message}`);
    }
  }

  /** Serialises writes: proofs chain from one transaction to the next. */
  write(records: readonly KeyValue[]): Promise<WriteResult> {
    const run = this.chain.then(() => this.writeNow(records));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async writeNow(records: readonly KeyValue[]): Promise<WriteResult> {
    if (this.halted) throw this.halted;
    let client: ImmudbClient | undefined;
    try {
      client = await this.connect();
      try {
        return await this.writeVerified(client, records);
      } catch (e) {
        if (e instanceof ImmudbError && isKeyExistsError(e)) return await this.writeSkippingStored(client, records);
        throw e;
      }
    } catch (e) {
      if (e instanceof VerificationError) {
        this.dropClient();
        this.halt(e);
      }
      throw e;
    }
  }

  private async writeVerified(client: ImmudbClient, records: readonly KeyValue[]): Promise<WriteResult> {
    // Each entry with its trace index, in the same transaction; the index exists iff its entry
    // does, so only entry keys carry the must-not-exist precondition.
    const kvs: KeyValue[] = [];
    for (const r of records) {
      kvs.push({ key: r.key, value: r.value });
      const idx = traceIndexOf(r.key, r.value);
      if (idx) kvs.push(idx);
    }
    const preconditions = records.map((r) => ({ keyMustNotExist: { key: r.key } }));
    let vtx;
    try {
      vtx = await client.verifiableSet(kvs, this.session.provenSince(), preconditions);
    } catch (e) {
      await this.refuseRollback(client, e);
      throw e;
    }
    const next = verifyVerifiableSet(vtx, kvs, this.session.anchor());
    await this.session.accept(client.serverUuid, next, vtx.signature);
    this.lastTxId = next.txId;
    return { txId: next.txId, written: records.length, duplicates: 0 };
  }

  /** A server whose history is shorter than what we trusted has been rolled back or replaced. */
  private async refuseRollback(client: ImmudbClient, cause: unknown) {
    if (!this.session.trusted) return;
    let current: number;
    try {
      current = toSafeInt((await client.currentState()).txId, 'current tx id');
    } catch {
      return;
    }
    this.session.refuseRollback(current, (cause as Error).message);
  }

  /**
   * A replayed batch: immudb says some keys exist. Each key is read with its proof
   * (VerifiableGet, checked against the trusted state, which advances): a key proven to hold
   * exactly our value counts as stored; one holding another value halts; the rest are written
   * as a new verified batch. The plain word of the server ("already exists", a plain Get) is
   * never taken: a server or proxy could say so of entries it does not hold.
   */
  private async writeSkippingStored(client: ImmudbClient, records: readonly KeyValue[]): Promise<WriteResult> {
    const missing: KeyValue[] = [];
    let duplicates = 0;
    for (const r of records) {
      const stored = await this.readVerified(client, r.key);
      if (!stored) {
        missing.push(r);
        continue;
      }
      if (!stored.value.equals(r.value)) {
        throw new VerificationError(`key ${r.key.toString()} already holds a different value in immudb (tx ${stored.txId}, proven); not overwriting an audit entry`);
      }
      duplicates++;
    }
    if (missing.length === 0) return { txId: 0, written: 0, duplicates };
    try {
      const res = await this.writeVerified(client, missing);
      return { ...res, duplicates };
    } catch (e) {
      if (!(e instanceof ImmudbError && isKeyExistsError(e))) throw e;
      // "Exists" again for keys the server just proved missing: its word is not taken; retried.
      throw new ImmudbError(
        `immudb answers that keys of this batch exist, but verified reads prove ${missing.length} of its ${records.length} entries missing; ` +
          `nothing is counted as stored, the entries stay in the spool (${e.message})`,
        e.code,
        e.details,
      );
    }
  }

  /** The key's current value, proven (undefined when immudb says it does not exist). */
  private async readVerified(client: ImmudbClient, key: Buffer): Promise<{ value: Buffer; txId: number } | undefined> {
    let ve;
    try {
      ve = await client.verifiableGet(key, this.session.provenSince());
    } catch (e) {
      if (isKeyNotFoundError(e)) return undefined;
      await this.refuseRollback(client, e);
      throw e;
    }
    const next = verifyVerifiableEntry(ve, this.session.anchor(), { key });
    await this.session.accept(client.serverUuid, next, ve.verifiableTx?.signature);
    return { value: ve.entry!.value, txId: toSafeInt(ve.entry!.tx, 'tx id') };
  }

  private dropClient() {
    const c = this.client;
    this.client = undefined;
    void c?.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.chain;
    await this.client?.close();
    this.client = undefined;
  }
}
