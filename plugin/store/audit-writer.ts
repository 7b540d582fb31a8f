// Verified batch writes: one immudb transaction per batch (VerifiableSet with every entry of the
// batch), accepted only when our own proof checks pass: the transaction holds exactly the
// entries we sent and extends the state we trusted before. Only then does the trusted state
// advance. A failed check halts the writer (entries stay queued) and says so loudly.
import { ImmudbClient, ImmudbError, isKeyExistsError, isKeyNotFoundError, type ImmudbConnectionOptions } from './immudb-client.js';
import { TrustedStateStore, type TrustedState } from './trusted-state.js';
import { ServerBinding } from './server-binding.js';
import { parseServerPublicKey, VerificationError, verifyStateSignature, verifyVerifiableSet } from './proofs/index.js';
import type { KeyObject } from 'node:crypto';
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
  /** Entries found already stored (a replay), left as they were. */
  duplicates: number;
}

/** The writer refuses to go on: the server's history does not match what we verified. */
export class TamperError extends Error {
  override readonly name = 'TamperError';
}

export interface AuditWriterOptions {
  connection: ImmudbConnectionOptions;
  /** PEM public key of immudb's state signing key: every proven state must be signed by it. */
  serverPublicKey?: string | null;
  stateDir: string;
  logger: Logger;
}

export class AuditWriter {
  private client: ImmudbClient | undefined;
  private connecting: Promise<ImmudbClient> | undefined;
  private trusted: TrustedState | undefined;
  /** The identity checked against the binding (and whose trusted state is loaded). */
  private boundUuid: string | undefined;
  private readonly states: TrustedStateStore;
  private readonly binding: ServerBinding;
  private chain: Promise<unknown> = Promise.resolve();
  /** Set when a check failed; the writer then refuses every write until restarted. */
  halted: Error | undefined;
  lastTxId = 0;

  private readonly signingKey: KeyObject | undefined;

  constructor(private readonly opts: AuditWriterOptions) {
    this.signingKey = opts.serverPublicKey ? parseServerPublicKey(opts.serverPublicKey) : undefined;
    this.states = new TrustedStateStore(opts.stateDir);
    this.binding = new ServerBinding(opts.stateDir);
  }

  private async connect(): Promise<ImmudbClient> {
    if (this.client) return this.client;
    this.connecting ??= ImmudbClient.connect({ ...this.opts.connection, checkIdentity: (uuid) => this.checkIdentity(uuid) }).finally(() => {
      this.connecting = undefined;
    });
    this.client = await this.connecting;
    return this.client;
  }

  /**
   * The server behind host:port/db must be the one we verified before. Checked before every
   * write: a restart can put another server or data directory behind the same address, and
   * the client learns the new identity when it reopens its session.
   */
  private checkIdentity(uuid: string) {
    const { host, port, database } = this.opts.connection;
    if (!uuid) throw new TamperError(`immudb at ${host}:${port} did not send its identity (immudb-uuid)`);
    if (uuid === this.boundUuid) return;
    const known = this.binding.check(host, port, database, uuid);
    if (known.mismatch) {
      throw new TamperError(
        `immudb at ${host}:${port} database ${database} has identity ${uuid}, but entries were verified on ${known.expected}: ` +
          `a different server or data directory is behind this address. Writes stop until an operator investigates ` +
          `(see docs/verification.md, "A different server").`,
      );
    }
    this.boundUuid = uuid;
    this.trusted = this.states.load(uuid, database);
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
      return await this.writeVerified(client, records);
    } catch (e) {
      if (e instanceof VerificationError || e instanceof TamperError) {
        if (e instanceof TamperError) this.dropClient();
        this.halt(e);
        throw e;
      }
      if (client && e instanceof ImmudbError && isKeyExistsError(e)) return this.writeSkippingStored(client, records);
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
    const since = this.trusted?.txId ?? 0;
    let vtx;
    try {
      vtx = await client.verifiableSet(kvs, since, preconditions);
    } catch (e) {
      await this.explainRollback(client, e);
      throw e;
    }
    // The answer may come from a server reached after a reconnect: it must still be ours.
    this.checkIdentity(client.serverUuid);
    const next = verifyVerifiableSet(vtx, kvs, this.trusted ? { txId: this.trusted.txId, alh: this.trusted.alh } : undefined);
    if (this.signingKey) verifyStateSignature(vtx.signature, this.signingKey, client.database, next.txId, next.alh);
    await this.advance(client, next);
    return { txId: next.txId, written: records.length, duplicates: 0 };
  }

  /** The new state, once durable (the batch counts as written only then). */
  private async advance(client: ImmudbClient, next: { txId: number; alh: Buffer }) {
    const state: TrustedState = { serverUuid: client.serverUuid, database: client.database, txId: next.txId, alh: next.alh };
    await this.states.save(state);
    this.trusted = state;
    this.lastTxId = next.txId;
  }

  /** A server whose history is shorter than what we trusted has been rolled back or replaced. */
  private async explainRollback(client: ImmudbClient, cause: unknown) {
    if (!this.trusted) return;
    let current: number;
    try {
      current = toSafeInt((await client.currentState()).txId, 'current tx id');
    } catch {
      return;
    }
    if (current < this.trusted.txId) {
      const err = new TamperError(
        `immudb database ${client.database} reports tx ${current}, but tx ${this.trusted.txId} was verified before: ` +
          `its history was rolled back or replaced (${(cause as Error).message})`,
      );
      this.halt(err);
      throw err;
    }
  }

  /**
   * A replayed batch: some keys exist already. Each existing key must hold exactly our value
   * (checked with a verified read); the rest are written as a new verified batch.
   */
  private async writeSkippingStored(client: ImmudbClient, records: readonly KeyValue[]): Promise<WriteResult> {
    const missing: KeyValue[] = [];
    let duplicates = 0;
    for (const r of records) {
      let stored;
      try {
        stored = await client.get(r.key);
      } catch (e) {
        if (isKeyNotFoundError(e)) {
          missing.push(r);
          continue;
        }
        throw e;
      }
      if (!stored.value.equals(r.value)) {
        throw new TamperError(`key ${r.key.toString()} already holds a different value in immudb (tx ${stored.tx}); not overwriting an audit entry`);
      }
      duplicates++;
    }
    if (missing.length === 0) return { txId: 0, written: 0, duplicates };
    const res = await this.writeVerified(client, missing);
    return { ...res, duplicates };
  }

  private dropClient() {
    const c = this.client;
    this.client = undefined;
    void c?.close().catch(() => undefined);
  }

  /** The state this writer trusts now (for status output). */
  trustedState(): TrustedState | undefined {
    return this.trusted;
  }

  async close(): Promise<void> {
    await this.chain;
    await this.client?.close();
    this.client = undefined;
  }
}
