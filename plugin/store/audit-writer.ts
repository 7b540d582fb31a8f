// Verified batch writes: one immudb transaction per batch (VerifiableSet with every entry of the
// batch), accepted only when our own proof checks pass: the transaction holds exactly the
// entries we sent and extends the state we trusted before. Only then does the trusted state
// advance (through the trusted session). A replayed batch whose keys exist already counts only
// for the keys a verified read proves to hold exactly our value. A failed check, or a trusted
// state that cannot be used, halts the writer (entries stay spooled) and says so loudly.
//
// A log may have several addresses (a primary and its replicas, decisions #23): the writer
// writes to the first, in order from the one it used last, that is not a read-only replica and
// proves its history extends the trusted state; it fails over when that one goes away. With
// `replicaAcks`, a write resolves (and its entries leave the spool) only once that many other
// addresses prove they hold its transaction: a promoted replica then lacks nothing acknowledged.
import { basename, dirname } from 'node:path';
import {
  ImmudbClient, ImmudbError, isKeyExistsError, isKeyNotFoundError, isReplicaError, isUnreachableError, type ImmudbConnectionOptions,
} from './immudb-client.js';
import { BehindError, FAILOVER_DOC, TRUST_DOC, TrustedSession, type Address } from './trusted-session.js';
import { VerificationError, verifyVerifiableEntry, verifyVerifiableSet, verifyVerifiableTx } from './proofs/index.js';
import { EntryTypeAction } from './immudb-types.js';
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
  /** Credentials, database, TLS; host and port are the first address. */
  connection: ImmudbConnectionOptions;
  /** Every address of the log (primary and replicas); default: the connection's. */
  addresses?: Address[];
  /** The log's name (decisions #23); default: the database. */
  log?: string;
  /** Other addresses that must prove they hold a batch's transaction before write() resolves. */
  replicaAcks?: number;
  /** How long write() waits for them before it fails (the batch is retried, as a replay). */
  replicaAckTimeoutMs?: number;
  /** PEM public key of immudb's state signing key: every proven state must be signed by it. */
  serverPublicKey?: string | null;
  /** The writer's trusted state: `$IMMUDB_AUDIT_DATA_DIR/trusted-state`. */
  stateDir: string;
  logger: Logger;
}

/** The operator's command that resets this writer's trust (named in its halt messages). */
function resetCommand(stateDir: string, c: ImmudbConnectionOptions, log: string): string {
  const where = basename(stateDir) === 'trusted-state' ? `--data-dir ${dirname(stateDir)}` : `--state-dir ${stateDir}`;
  return `immudb-audit trust reset ${where} --address ${c.host}:${c.port} --database ${c.database}${log !== c.database ? ` --log ${log}` : ''}`;
}

/** Another identity answered on a reconnection: it must be admitted before it is used. */
class ServerChanged extends Error {
  override readonly name = 'ServerChanged';
}

/** The server holds the database as a read-only replica: never written to. */
class ReadOnlyReplica extends Error {
  override readonly name = 'ReadOnlyReplica';
}

export class AuditWriter {
  private addresses: Address[];
  private readonly clients = new Map<number, ImmudbClient>();
  /** The identity each address proved, so a reconnection to another one is noticed. */
  private readonly identities = new Map<number, string>();
  private current = 0;
  /** A batch written whose replica acknowledgements are still awaited (see retryReplicaWait). */
  private unacked: { records: readonly KeyValue[]; result: WriteResult } | undefined;
  private session: TrustedSession;
  private chain: Promise<unknown> = Promise.resolve();
  /** Set when a check failed; the writer then refuses every write until restarted. */
  halted: Error | undefined;
  lastTxId = 0;
  /** Counters for metrics: another server proved the log; the writer moved to another address; it re-anchored after lag. */
  readonly events = { serverChanges: 0, failovers: 0, lagRecoveries: 0 };

  constructor(private readonly opts: AuditWriterOptions) {
    const { host, port } = opts.connection;
    this.addresses = opts.addresses?.length ? opts.addresses : [{ host, port }];
    this.session = this.createSession(opts, this.addresses);
  }

  private createSession(opts: AuditWriterOptions, addresses: Address[]): TrustedSession {
    const log = opts.log ?? opts.connection.database;
    return new TrustedSession({
      log, database: opts.connection.database, addresses,
      stateDir: opts.stateDir,
      serverPublicKey: opts.serverPublicKey,
      resetCommand: resetCommand(opts.stateDir, opts.connection, log),
      holder: 'writer',
      onFirstContact: (m) => opts.logger.warn(m),
      onNotice: (m, kind) => {
        if (kind === 'server-change') this.events.serverChanges++;
        if (kind === 'lag') this.events.lagRecoveries++;
        opts.logger.warn(m);
      },
    });
  }

  /**
   * A configuration change for the same destination (addresses, database): new credentials,
   * TLS or server key. Applied between two writes (on the write chain), so no write races it;
   * the next write opens new connections with them. The trusted state is the same file: the
   * new session loads it and admits the servers again. A malformed key throws here, before
   * anything changes. `replicas` (a new configuration's immudb_addresses, immudb_replica_acks,
   * immudb_replica_ack_timeout) apply the same way: the writer goes on from the address it used
   * if it is still listed, and a batch awaiting acknowledgements is awaited with the new ones.
   */
  reconfigure(
    connection: ImmudbConnectionOptions,
    serverPublicKey: string | null | undefined,
    replicas?: Pick<AuditWriterOptions, 'addresses' | 'replicaAcks' | 'replicaAckTimeoutMs'>,
  ): Promise<void> {
    const next = { ...this.opts, connection, serverPublicKey, ...replicas };
    const addresses = next.addresses?.length ? next.addresses : [{ host: connection.host, port: connection.port }];
    const session = this.createSession(next, addresses);
    const run = this.chain.then(() => {
      const using = this.addresses[this.current]!;
      Object.assign(this.opts, { connection: next.connection, serverPublicKey: next.serverPublicKey, addresses: next.addresses, replicaAcks: next.replicaAcks, replicaAckTimeoutMs: next.replicaAckTimeoutMs });
      for (const i of [...this.clients.keys()]) this.dropClient(i);
      this.identities.clear();
      this.addresses = addresses;
      this.current = Math.max(0, addresses.findIndex((a) => a.host === using.host && a.port === using.port));
      this.session = session;
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  private address(i: number): string {
    const a = this.addresses[i]!;
    return `${a.host}:${a.port}`;
  }

  private async client(i: number): Promise<ImmudbClient> {
    const have = this.clients.get(i);
    if (have) return have;
    const a = this.addresses[i]!;
    // The database is created only on first contact with the log: a server without it, once
    // the log is trusted, was replaced or lost it.
    const trusted = await this.session.load();
    // A session reopened after a restart may reach another server behind the address: it is
    // used only once admitted (ServerChanged sends the write to admission again).
    const c = await ImmudbClient.connect({
      ...this.opts.connection,
      host: a.host,
      port: a.port,
      createDatabase: Boolean(this.opts.connection.createDatabase && i === 0 && !trusted),
      checkIdentity: (uuid) => {
        const known = this.identities.get(i);
        if (known !== undefined && known !== uuid) {
          this.identities.delete(i);
          throw new ServerChanged(`immudb at ${this.address(i)} now has identity ${uuid} (was ${known}): it must prove it holds the log first`);
        }
      },
    }).catch((e: unknown) => {
      throw this.missingDatabase(e, i) ?? e;
    });
    this.clients.set(i, c);
    return c;
  }

  /** A trusted log whose database is missing at address i: that server was replaced or lost it. */
  private missingDatabase(e: unknown, i: number): BehindError | undefined {
    const trusted = this.session.trusted;
    if (!trusted || !(e instanceof ImmudbError) || !/database does not exist/i.test(e.details ?? e.message)) return undefined;
    return new BehindError(
      `database ${this.opts.connection.database} does not exist on immudb at ${this.address(i)}, but the writer verified tx ${trusted.txId} of log ${trusted.log} on server ${trusted.serverUuid}: ` +
        `the server was replaced or the database removed (see ${FAILOVER_DOC} and ${TRUST_DOC})`,
      0,
      trusted.txId,
    );
  }

  /** A client of address i that accepts writes and proved it holds the log. */
  private async writable(i: number): Promise<ImmudbClient> {
    const c = await this.client(i);
    if (this.identities.get(i) === c.serverUuid) return c;
    // Checked on each admission, so a replica promoted meanwhile is written to next time.
    if (await c.isReplica()) throw new ReadOnlyReplica(`immudb at ${this.address(i)} holds ${c.database} as a read-only replica`);
    await this.session.admit(this.logServer(c, i));
    this.identities.set(i, c.serverUuid);
    return c;
  }

  private logServer(c: ImmudbClient, i: number) {
    return {
      serverUuid: c.serverUuid,
      address: this.address(i),
      currentTxId: async () => toSafeInt((await c.currentState()).txId, 'current tx id'),
      proveTx: (tx: number, since: number) => c.verifiableTxById(tx, since, EntryTypeAction.EXCLUDE),
    };
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
    const waiting = await this.retryReplicaWait(records);
    if (waiting) return waiting;
    let lastError: unknown;
    let behind: BehindError | undefined;
    const n = this.addresses.length;
    for (let k = 0; k < n; k++) {
      const i = (this.current + k) % n;
      try {
        const c = await this.writable(i);
        let res: WriteResult;
        try {
          res = await this.writeVerified(c, i, records);
        } catch (e) {
          if (e instanceof ImmudbError && isKeyExistsError(e)) res = await this.writeSkippingStored(c, i, records);
          else throw e;
        }
        if (i !== this.current) {
          this.events.failovers++;
          this.opts.logger.warn(`writing to immudb at ${this.address(i)} (server ${c.serverUuid}) instead of ${this.address(this.current)}`);
          this.current = i;
        }
        this.unacked = { records, result: res };
        await this.waitForReplicas(i);
        this.unacked = undefined;
        return res;
      } catch (err) {
        const e = this.missingDatabase(err, i) ?? err;
        if (e instanceof BehindError) {
          behind ??= e;
        } else if (e instanceof VerificationError) {
          this.dropClient(i);
          this.halt(e);
          throw e;
        } else if (!(isReplicaError(e) || isUnreachableError(e) || e instanceof ServerChanged || e instanceof ReadOnlyReplica)) {
          throw e;
        }
        // Another address may serve: an unreachable server, a changed identity, a replica.
        if (isUnreachableError(e) || e instanceof ServerChanged) this.dropClient(i);
        lastError = e;
      }
    }
    // A writable server with a shorter history, and no other to write to: a rollback, or a
    // failover to a replica that lags behind what was acknowledged.
    if (behind) {
      this.dropClient(this.current);
      this.halt(behind);
      throw behind;
    }
    throw lastError;
  }

  /**
   * The batch written before whose replicas did not prove it in time, retried by the pipeline:
   * while its server still answers, only the wait is repeated (nothing is written again). When
   * that server has gone, the batch goes the normal way (failover, replay by verified reads).
   */
  private async retryReplicaWait(records: readonly KeyValue[]): Promise<WriteResult | undefined> {
    const u = this.unacked;
    this.unacked = undefined;
    if (!u || u.records.length !== records.length || !u.records.every((r, k) => r.key.equals(records[k]!.key))) return undefined;
    const c = this.clients.get(this.current);
    if (!c) return undefined;
    try {
      await c.currentState();
    } catch (e) {
      if (isUnreachableError(e)) this.dropClient(this.current);
      return undefined;
    }
    this.unacked = u;
    await this.waitForReplicas(this.current);
    this.unacked = undefined;
    return u.result;
  }

  /**
   * Waits until `replicaAcks` other addresses prove they hold the trusted tx (which includes
   * the batch just written), then records it as durable. A replica proves it with a
   * VerifiableTxById of that tx, checked against the Alh the writer verified.
   */
  private async waitForReplicas(primary: number): Promise<void> {
    const need = this.opts.replicaAcks ?? 0;
    const target = this.session.anchor();
    if (need <= 0 || !target) return;
    const deadline = Date.now() + (this.opts.replicaAckTimeoutMs ?? 10_000);
    const held = new Set<number>();
    for (;;) {
      for (let j = 0; j < this.addresses.length && held.size < need; j++) {
        if (j === primary || held.has(j)) continue;
        try {
          const c = await this.client(j);
          const at = toSafeInt((await c.currentState()).txId, 'current tx id');
          if (at < target.txId) continue;
          verifyVerifiableTx(await c.verifiableTxById(target.txId, target.txId, EntryTypeAction.EXCLUDE), target, { listedEntries: 'none' });
          held.add(j);
        } catch (e) {
          if (e instanceof VerificationError) this.opts.logger.once('error', `replica-fork-${j}`, `immudb at ${this.address(j)} does not hold tx ${target.txId} as verified: ${e.message}`);
          else if (isUnreachableError(e)) this.dropClient(j);
        }
      }
      if (held.size >= need) break;
      if (Date.now() > deadline) {
        throw new ImmudbError(
          `tx ${target.txId} is held by ${held.size} of the ${need} replicas required (immudb_replica_acks) after ${this.opts.replicaAckTimeoutMs ?? 10_000} ms: ` +
            `its entries stay in the spool and are retried`,
        );
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    await this.session.markDurable(target);
  }

  private async writeVerified(client: ImmudbClient, i: number, records: readonly KeyValue[]): Promise<WriteResult> {
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
      await this.refuseRollback(client, i, e);
      throw e;
    }
    const next = verifyVerifiableSet(vtx, kvs, this.session.anchor());
    await this.session.accept(client.serverUuid, next, vtx.signature, this.address(i));
    this.lastTxId = next.txId;
    return { txId: next.txId, written: records.length, duplicates: 0 };
  }

  /** A server whose history is shorter than what we trusted has been rolled back or replaced. */
  private async refuseRollback(client: ImmudbClient, i: number, cause: unknown) {
    if (!this.session.trusted) return;
    let current: number;
    try {
      current = toSafeInt((await client.currentState()).txId, 'current tx id');
    } catch {
      return;
    }
    this.session.refuseRollback(current, { serverUuid: client.serverUuid, address: this.address(i) }, (cause as Error).message);
  }

  /**
   * A replayed batch: immudb says some keys exist. Each key is read with its proof
   * (VerifiableGet, checked against the trusted state, which advances): a key proven to hold
   * exactly our value counts as stored; one holding another value halts; the rest are written
   * as a new verified batch. The plain word of the server ("already exists", a plain Get) is
   * never taken: a server or proxy could say so of entries it does not hold.
   */
  private async writeSkippingStored(client: ImmudbClient, i: number, records: readonly KeyValue[]): Promise<WriteResult> {
    const missing: KeyValue[] = [];
    let duplicates = 0;
    for (const r of records) {
      const stored = await this.readVerified(client, i, r.key);
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
      const res = await this.writeVerified(client, i, missing);
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
  private async readVerified(client: ImmudbClient, i: number, key: Buffer): Promise<{ value: Buffer; txId: number } | undefined> {
    let ve;
    try {
      ve = await client.verifiableGet(key, this.session.provenSince());
    } catch (e) {
      if (isKeyNotFoundError(e)) return undefined;
      await this.refuseRollback(client, i, e);
      throw e;
    }
    const next = verifyVerifiableEntry(ve, this.session.anchor(), { key });
    await this.session.accept(client.serverUuid, next, ve.verifiableTx?.signature ?? null, this.address(i));
    return { value: ve.entry!.value, txId: toSafeInt(ve.entry!.tx, 'tx id') };
  }

  private dropClient(i: number) {
    const c = this.clients.get(i);
    this.clients.delete(i);
    this.identities.delete(i);
    void c?.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.chain;
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(all.map((c) => c.close()));
  }
}
