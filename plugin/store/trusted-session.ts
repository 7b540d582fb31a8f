// One trusted session with one audit log, for the writer and for auditors alike: the trusted
// state of the log, the admission of any server that claims to hold it, the check that its
// states are signed, and the advance of the trusted state once a proof held.
//
// Trust belongs to the log, not to a server (decisions #23): the state is kept per log (the
// database name unless configured), and every server, whatever its identity or address, must
// prove with a dual proof from the trusted tx that its history extends the trusted state before
// a write or a read is accepted from it (admit()). A server with another identity but the same
// history is accepted, and the change is logged and counted; a forked history is refused
// (ForkError), a shorter one too (BehindError: a rollback or a replica that lags), except that
// a writer waiting for replicas re-anchors at the last transaction they were seen to hold when
// the new server holds exactly that history (its spool re-sends the rest).
//
// Trust is never reset implicitly. A state file that exists but cannot be read, parsed or
// written is a trust failure (TrustStateError), as is a fork or a shorter history: the writer
// halts, the CLI exits 3, and each message names the file or the reason and the way out.
import { readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import type { Signature, VerifiableTx } from './immudb-types.js';
import { parseServerPublicKey, VerificationError, verifyStateSignature, verifyVerifiableTx } from './proofs/index.js';
import { ServerBinding } from './server-binding.js';
import { TrustedStateStore, UnusableTrustFile, type TrustedState } from './trusted-state.js';

export type { TrustedState } from './trusted-state.js';

/** The section of docs/verification.md every trust failure points to. */
export const TRUST_DOC = 'docs/verification.md, "When trust fails"';
/** The failover runbook. */
export const FAILOVER_DOC = 'docs/operations.md, "Failover"';

/** A trusted state or binding file that cannot be read, parsed or written. */
export class TrustStateError extends VerificationError {
  override readonly name: string = 'TrustStateError';
  constructor(message: string, readonly file: string) {
    super(message);
  }
}

/** A server whose history is not the trusted one from some transaction on. */
export class ForkError extends VerificationError {
  override readonly name: string = 'ForkError';
}

/** A server whose history is shorter than the trusted one: rolled back, or a replica that lags. */
export class BehindError extends VerificationError {
  override readonly name: string = 'BehindError';
  constructor(message: string, readonly serverTxId: number, readonly trustedTxId: number) {
    super(message);
  }
}

export interface Address {
  host: string;
  port: number;
}

/** The audit log a session trusts: a name, its database, and the addresses that may serve it. */
export interface LogDestination {
  /** The log's name (decisions #23): `immudb_log_name` / `--log`, default the database name. */
  log: string;
  database: string;
  /** Every address configured for the log (bindings of earlier versions are read for these). */
  addresses: Address[];
}

export interface TrustedSessionOptions extends LogDestination {
  stateDir: string;
  /** PEM public key of immudb's state signing key: every state accepted must be signed by it. */
  serverPublicKey?: string | null | undefined;
  /** How an operator resets this trust on purpose (named in messages), e.g. `immudb-audit trust reset --state-dir ...`. */
  resetCommand: string;
  /** Whose trust this is, in messages: the plugin's writer, or an auditor. */
  holder: 'writer' | 'auditor';
  /** Told when a contact starts without any trusted state (trust on first use). */
  onFirstContact?: (message: string) => void;
  /** Told of what changed without failing: another server proving the log, a migration, a re-anchor after lag. */
  onNotice?: (message: string, kind: 'server-change' | 'migration' | 'lag' | 'damaged-copy') => void;
}

/** What admission needs from a server that claims to hold the log. */
export interface LogServer {
  serverUuid: string;
  /** host:port, in messages. */
  address: string;
  currentTxId(): Promise<number>;
  /** VerifiableTxById of `tx` proven since `sinceTx`, without entries. */
  proveTx(tx: number, sinceTx: number): Promise<VerifiableTx>;
}

const short = (alh: Buffer) => alh.toString('hex').slice(0, 16);

export class TrustedSession {
  private readonly states: TrustedStateStore;
  private readonly signingKey: KeyObject | undefined;
  private loaded = false;
  private state: TrustedState | undefined;
  /** Server identities that proved they hold the log (admission is once per identity). */
  private readonly admitted = new Set<string>();
  /** The identity whose state an earlier version kept, when this session migrated it. */
  migratedFrom: string | undefined;

  constructor(private readonly opts: TrustedSessionOptions) {
    this.states = new TrustedStateStore(opts.stateDir);
    this.signingKey = opts.serverPublicKey ? parseServerPublicKey(opts.serverPublicKey) : undefined;
  }

  get database(): string {
    return this.opts.database;
  }

  get log(): string {
    return this.opts.log;
  }

  /** The state trusted now (undefined before load() or without any). */
  get trusted(): TrustedState | undefined {
    return this.state;
  }

  /** The tx a proof must start from (0: nothing trusted, the server proves against itself). */
  provenSince(): number {
    return this.state?.txId ?? 0;
  }

  /** The trusted tx and Alh, as the proof checks take them. */
  anchor(): { txId: number; alh: Buffer } | undefined {
    const t = this.state;
    return t ? { txId: t.txId, alh: t.alh } : undefined;
  }

  /**
   * Loads the log's trusted state once (a file that cannot be used throws, and is tried again
   * next time). Without one, a state an earlier version kept for a server bound to one of the
   * log's addresses is migrated: the newest of them becomes the log's state.
   */
  async load(): Promise<TrustedState | undefined> {
    if (this.loaded) return this.state;
    const { log, database } = this.opts;
    // A save torn by a crash leaves one copy invalid, as does damage to the newest copy; then
    // the state is one save older than the last (still a state verified before): said, since
    // only an operator can tell the two apart (docs/decisions.md #44).
    let state = this.guard(() => this.states.load(log, database, (file) => this.opts.onNotice?.(
      `trusted state file ${file}: one of its two copies is not valid (a save torn by a crash, or damaged bytes); the other copy is used. If no crash happened, check the disk`, 'damaged-copy')));
    if (!state) {
      const legacy = this.guard(() => this.legacyState());
      if (legacy) {
        state = { log, database, txId: legacy.txId, alh: legacy.alh, serverUuid: legacy.serverUuid };
        await this.save(state);
        this.migratedFrom = legacy.serverUuid;
        this.opts.onNotice?.(`trusted state of log ${log} migrated from ${legacy.file} (server ${legacy.serverUuid}, tx ${legacy.txId}) to ${this.states.path(log)}`, 'migration');
      }
    }
    this.state = state;
    this.loaded = true;
    return state;
  }

  private legacyState(): { txId: number; alh: Buffer; serverUuid: string; file: string } | undefined {
    const binding = new ServerBinding(this.opts.stateDir);
    let best: { txId: number; alh: Buffer; serverUuid: string; file: string } | undefined;
    for (const a of this.opts.addresses) {
      const uuid = binding.read(a.host, a.port, this.opts.database);
      if (!uuid) continue;
      const s = this.states.loadLegacy(uuid, this.opts.database);
      if (s && (!best || s.txId > best.txId)) best = { ...s, serverUuid: uuid };
    }
    return best;
  }

  /**
   * Admits a server that claims to hold the log: it must prove (dual proof from the trusted tx
   * to its current one, signed when a key is configured) that its history extends the trusted
   * state. Once per server identity; a reconnection that reaches another
   * identity is admitted anew. Without a trusted state, the first proof establishes it.
   */
  async admit(server: LogServer): Promise<void> {
    const t = await this.load();
    const { serverUuid: uuid, address } = server;
    if (!uuid) throw new VerificationError(`immudb at ${address} did not send its identity (immudb-uuid)`);
    if (this.admitted.has(uuid)) return;
    const { log, database } = this.opts;
    if (!t) {
      this.opts.onFirstContact?.(
        `no trusted state for log ${log} (database ${database}) in ${this.opts.stateDir}: the history of immudb at ${address} (server ${uuid}) ` +
          `is trusted as it is (first contact, or after trust reset)`,
      );
      this.admitted.add(uuid);
      return;
    }
    const n = await server.currentTxId();
    if (n >= t.txId) {
      // Proven, not yet trusted: the state advances with the operation that follows (a write,
      // a read, an audit of the range), as it would have without this admission.
      this.proven(server, await server.proveTx(n, t.txId), t, n);
    } else {
      const d = t.durable;
      if (this.opts.holder !== 'writer' || !d || n < d.txId) throw this.behind(server, n, t);
      // A writer that waits for replicas: the transactions after the last one they were seen
      // to hold may be missing on a promoted replica; its spool still holds their entries.
      const next = this.proven(server, await server.proveTx(n, d.txId), d, n);
      const state: TrustedState = { ...t, txId: next.txId, alh: next.alh, serverUuid: uuid, durable: d };
      await this.save(state);
      this.state = state;
      this.opts.onNotice?.(
        `immudb at ${address} (server ${uuid}) holds log ${log} up to tx ${n}, but tx ${t.txId} was verified before on server ${t.serverUuid}: ` +
          `transactions ${n + 1}..${t.txId} had not reached it when it took over (replication lag); it extends tx ${d.txId}, the last one the replicas were seen to hold, ` +
          `so trust continues from its tx ${n} and the entries not yet on it are sent again from the spool (see ${FAILOVER_DOC})`,
        'lag',
      );
    }
    this.admitted.add(uuid);
  }

  /** Checks a proof of tx `n` against `from` and its signature; a failed proof is a fork. */
  private proven(server: LogServer, vtx: VerifiableTx, from: { txId: number; alh: Buffer }, n: number): { txId: number; alh: Buffer } {
    let next;
    try {
      next = verifyVerifiableTx(vtx, from, { listedEntries: 'none' });
      if (next.txId !== n) throw new VerificationError(`asked for tx ${n}, immudb proved tx ${next.txId}`);
    } catch (e) {
      if (!(e instanceof VerificationError)) throw e;
      throw new ForkError(
        `immudb at ${server.address} (server ${server.serverUuid}) does not hold log ${this.opts.log} as verified: its history forks from the trusted state ` +
          `(tx ${from.txId}, Alh ${short(from.alh)}..., verified on server ${this.state?.serverUuid || 'unknown'}): ${e.message}. ` +
          `Nothing is written to or read from it; find the server that holds the log (see ${FAILOVER_DOC}), or, if an operator decides this history is the one to keep, \`${this.opts.resetCommand}\` (see ${TRUST_DOC})`,
      );
    }
    this.checkSigned(next, vtx.signature);
    return next;
  }

  private behind(server: { serverUuid: string; address: string }, n: number, t: TrustedState): BehindError {
    const verified = this.opts.holder === 'auditor' ? 'this auditor verified' : 'the writer verified';
    return new BehindError(
      `immudb at ${server.address} (server ${server.serverUuid}) reports tx ${n} of ${this.opts.database}, but ${verified} tx ${t.txId} of log ${this.opts.log} before` +
        `${t.serverUuid && t.serverUuid !== server.serverUuid ? ` on server ${t.serverUuid}` : ''}: its history is shorter. ` +
        `Either it lags (a replica still catching up: wait, or use a server that holds tx ${t.txId}; see ${FAILOVER_DOC}) or its history was rolled back or replaced (see ${TRUST_DOC})`,
      n,
      t.txId,
    );
  }

  /** Throws when the server reports a history shorter than the trusted one. */
  refuseRollback(currentTxId: number, server: { serverUuid: string; address: string }, cause?: string): void {
    const t = this.state;
    if (!t || currentTxId >= t.txId) return;
    const e = this.behind(server, currentTxId, t);
    if (cause) e.message += ` (${cause})`;
    throw e;
  }

  /** Throws unless the state is signed by the configured server key (no key: nothing to check). */
  checkSigned(next: { txId: number; alh: Buffer }, signature: Signature | null | undefined): void {
    if (this.signingKey) verifyStateSignature(signature, this.signingKey, this.opts.database, next.txId, next.alh);
  }

  /**
   * Makes `next` (a state a proof established, from the server `serverUuid`) the trusted state
   * when it is newer, once it is durable. Callers check the proof and the signature first.
   */
  async advance(serverUuid: string, next: { txId: number; alh: Buffer }, address?: string): Promise<void> {
    const current = await this.load();
    const changed = current !== undefined && current.serverUuid !== serverUuid;
    if (current && next.txId <= current.txId && !changed) return;
    const newer = !current || next.txId > current.txId;
    const state: TrustedState = {
      log: this.opts.log,
      database: this.opts.database,
      txId: newer ? next.txId : current!.txId,
      alh: Buffer.from(newer ? next.alh : current!.alh),
      serverUuid,
      durable: current?.durable,
    };
    await this.save(state);
    this.state = state;
    if (changed) {
      this.opts.onNotice?.(
        `log ${this.opts.log} (database ${this.opts.database}) is now served by server ${serverUuid}${address ? ` at ${address}` : ''}, ` +
          `trusted before on server ${current!.serverUuid}: it proved that its history extends the trusted state (tx ${current!.txId})`,
        'server-change',
      );
    }
  }

  /** The signature, then advance. */
  async accept(serverUuid: string, next: { txId: number; alh: Buffer }, signature: Signature | null | undefined, address?: string): Promise<void> {
    if (signature !== undefined) this.checkSigned(next, signature);
    await this.advance(serverUuid, next, address);
  }

  /** Records that the required replicas hold tx `at` (a writer that waits for them). */
  async markDurable(at: { txId: number; alh: Buffer }): Promise<void> {
    const t = this.state;
    if (!t || (t.durable && t.durable.txId >= at.txId) || at.txId > t.txId) return;
    const state: TrustedState = { ...t, durable: { txId: at.txId, alh: Buffer.from(at.alh) } };
    await this.save(state);
    this.state = state;
  }

  private async save(state: TrustedState): Promise<void> {
    try {
      await this.states.save(state);
    } catch (e) {
      throw this.unusable(e);
    }
  }

  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw this.unusable(e);
    }
  }

  private unusable(e: unknown): Error {
    if (!(e instanceof UnusableTrustFile)) return e as Error;
    return new TrustStateError(
      `${e.message}. Trust is never reset implicitly: repair or restore the file, or, once the server is checked, ` +
        `reset trust with \`${this.opts.resetCommand}\` (see ${TRUST_DOC})`,
      e.file,
    );
  }
}

export interface ResetResult {
  moved: Array<{ from: string; to: string }>;
  /** Why some files were left where they are. */
  notes: string[];
  /** The state that was trusted before (for the lifecycle entry), when it could be read. */
  previous: { txId: number; alh: string; serverUuid: string } | undefined;
}

/**
 * `immudb-audit trust reset`: moves the log's trusted state (and an auditor's checkpoint)
 * aside, renamed with a timestamp, together with what an earlier version kept for the log's
 * addresses (bindings, states per server identity), so that no migration brings it back.
 * With a binding that cannot be read, `serverUuid` names the identity; without it, the earlier
 * states of this database under identities no other binding names are moved.
 */
export function resetTrust(stateDir: string, dest: LogDestination, serverUuid?: string): ResetResult {
  const binding = new ServerBinding(stateDir);
  const states = new TrustedStateStore(stateDir);
  const suffix = `.reset-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  const out: ResetResult = { moved: [], notes: [], previous: undefined };
  const moveAside = (file: string) => {
    try {
      statSync(file);
    } catch {
      return;
    }
    renameSync(file, file + suffix);
    out.moved.push({ from: file, to: file + suffix });
  };
  try {
    const prev = states.load(dest.log, dest.database);
    if (prev) out.previous = { txId: prev.txId, alh: prev.alh.toString('hex'), serverUuid: prev.serverUuid };
  } catch (e) {
    out.notes.push(`${(e as Error).message}: moved aside as it is`);
  }
  const file = states.path(dest.log);
  moveAside(file);
  moveAside(file.replace(/\.json$/, '.audited.json'));
  const identities = new Set<string>(serverUuid ? [serverUuid] : []);
  let unreadable = false;
  for (const a of dest.addresses) {
    try {
      const known = binding.read(a.host, a.port, dest.database);
      if (known && !serverUuid) identities.add(known);
    } catch (e) {
      unreadable = true;
      out.notes.push(`${(e as Error).message}: its identity is unknown`);
    }
    moveAside(binding.file(a.host, a.port, dest.database));
  }
  if (!serverUuid && unreadable) for (const id of unboundIdentities(stateDir, binding, dest)) identities.add(id);
  for (const id of identities) {
    moveAside(states.legacyPath(id, dest.database));
    moveAside(join(stateDir, id, `${dest.database}.audited.json`));
  }
  if (!out.moved.length) out.notes.push(`nothing to reset for log ${dest.log} (database ${dest.database}) in ${stateDir}`);
  return out;
}

/** Identities with an earlier state of this database that no (readable) binding of another destination names. */
function unboundIdentities(stateDir: string, binding: ServerBinding, dest: LogDestination): string[] {
  let dirs: string[];
  try {
    dirs = readdirSync(stateDir).filter((d) => d !== 'bindings' && d !== 'logs');
  } catch {
    return [];
  }
  const claimed = new Set<string>();
  let files: string[] = [];
  try {
    files = readdirSync(join(stateDir, 'bindings')).filter((f) => f.endsWith('.json'));
  } catch {
    files = [];
  }
  const own = new Set(dest.addresses.map((a) => binding.file(a.host, a.port, dest.database)));
  for (const f of files) {
    const path = join(stateDir, 'bindings', f);
    if (own.has(path)) continue;
    try {
      const id = (JSON.parse(readFileSync(path, 'utf8')) as { server_uuid?: string }).server_uuid;
      if (id) claimed.add(id);
    } catch {
      // An unreadable binding of another destination claims nothing we could name.
    }
  }
  return dirs.filter((d) => !claimed.has(d));
}
