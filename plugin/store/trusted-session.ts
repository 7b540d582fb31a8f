// One trusted session with one immudb destination (address and database), for the writer and
// for auditors alike: which server identity is bound to the destination, the trusted state
// kept for it, the checks that the server did not roll its history back and that its states
// are signed, and the advance of the trusted state once a proof held.
//
// Trust is never reset implicitly. A binding or state file that exists but cannot be read,
// parsed or written is a trust failure (TrustStateError), as is another identity behind the
// address or a history shorter than the trusted one: the writer halts, the CLI exits 3, and
// each message names the file or the reason and the one way out, `immudb-audit trust reset`
// (resetTrust below), which moves the files aside and never deletes them.
//
// Trust is kept under one key, trustKey(): today the server identity (UUID) and the database.
// A replicated deployment could key it by the audit log's own identity instead; only
// trustKey() (and resetTrust's choice of files) would change.
import { readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import type { Signature } from './immudb-types.js';
import { parseServerPublicKey, VerificationError, verifyStateSignature } from './proofs/index.js';
import { ServerBinding } from './server-binding.js';
import { TrustedStateStore, UnusableTrustFile, type TrustedState } from './trusted-state.js';

export type { TrustedState } from './trusted-state.js';

/** The section of docs/verification.md every trust failure points to. */
export const TRUST_DOC = 'docs/verification.md, "When trust fails"';

/** A trusted state or binding file that cannot be read, parsed or written. */
export class TrustStateError extends VerificationError {
  override readonly name: string = 'TrustStateError';
  constructor(message: string, readonly file: string) {
    super(message);
  }
}

export interface Destination {
  host: string;
  port: number;
  database: string;
}

export interface TrustedSessionOptions extends Destination {
  stateDir: string;
  /** PEM public key of immudb's state signing key: every state accepted must be signed by it. */
  serverPublicKey?: string | null | undefined;
  /** How an operator resets this trust on purpose (named in messages), e.g. `immudb-audit trust reset --state-dir ...`. */
  resetCommand: string;
  /** Whose trust this is, in messages: the plugin's writer, or an auditor. */
  holder: 'writer' | 'auditor';
  /** Told when a contact starts without any trusted state (trust on first use). */
  onFirstContact?: (message: string) => void;
}

/** The key trust is kept under (see the file comment). */
function trustKey(serverUuid: string, database: string): { identity: string; database: string } {
  return { identity: serverUuid, database };
}

export class TrustedSession {
  private readonly states: TrustedStateStore;
  private readonly binding: ServerBinding;
  private readonly signingKey: KeyObject | undefined;
  /** The identity checked against the binding, and the state loaded for it. */
  private bound: { serverUuid: string; trusted: TrustedState | undefined } | undefined;

  constructor(private readonly opts: TrustedSessionOptions) {
    this.states = new TrustedStateStore(opts.stateDir);
    this.binding = new ServerBinding(opts.stateDir);
    this.signingKey = opts.serverPublicKey ? parseServerPublicKey(opts.serverPublicKey) : undefined;
  }

  get database(): string {
    return this.opts.database;
  }

  /** The state trusted now (undefined before bind() or on first contact). */
  get trusted(): TrustedState | undefined {
    return this.bound?.trusted;
  }

  /** The tx a proof must start from (0: nothing trusted, the server proves against itself). */
  provenSince(): number {
    return this.bound?.trusted?.txId ?? 0;
  }

  /** The trusted tx and Alh, as the proof checks take them. */
  anchor(): { txId: number; alh: Buffer } | undefined {
    const t = this.bound?.trusted;
    return t ? { txId: t.txId, alh: t.alh } : undefined;
  }

  /** The identity recorded for the destination, if any (a binding that cannot be read throws). */
  knownIdentity(): string | undefined {
    const { host, port, database } = this.opts;
    return this.guard(() => this.binding.read(host, port, database));
  }

  /**
   * Binds the session to the server's identity: it must be the one recorded for the
   * destination (recorded now on first contact), and its trusted state is loaded. Called on
   * every session the client opens and again before a proof is accepted, since a reconnect
   * can reach another server. Nothing is recorded or remembered unless every step succeeds.
   */
  bind(serverUuid: string): void {
    const { host, port, database } = this.opts;
    if (!serverUuid) throw new VerificationError(`immudb at ${host}:${port} did not send its identity (immudb-uuid)`);
    if (this.bound?.serverUuid === serverUuid) return;
    const known = this.knownIdentity();
    if (known !== undefined && known !== serverUuid) {
      const verified = this.opts.holder === 'auditor' ? `this auditor verified entries on ${known}` : `entries were verified on ${known}`;
      throw new VerificationError(
        `immudb at ${host}:${port} database ${database} has identity ${serverUuid}, but ${verified}: a different server or data directory is behind this address. ` +
          `Once an operator has checked that the new server is legitimate, \`${this.opts.resetCommand}\` resets trust (see ${TRUST_DOC})`,
      );
    }
    const key = trustKey(serverUuid, database);
    const trusted = this.guard(() => this.states.load(key.identity, key.database));
    if (known === undefined) this.guard(() => this.binding.record(host, port, database, serverUuid));
    this.bound = { serverUuid, trusted };
    if (!trusted) {
      this.opts.onFirstContact?.(
        `no trusted state for immudb at ${host}:${port} database ${database} (server ${serverUuid}) in ${this.opts.stateDir}: ` +
          `its current history is trusted as it is (first contact, or after trust reset)`,
      );
    }
  }

  /** Throws when the server reports a history shorter than the trusted one. */
  refuseRollback(currentTxId: number, cause?: string): void {
    const t = this.bound?.trusted;
    if (!t || currentTxId >= t.txId) return;
    const verified = this.opts.holder === 'auditor' ? `this auditor verified tx ${t.txId} before` : `tx ${t.txId} was verified before`;
    throw new VerificationError(
      `immudb database ${this.opts.database} reports tx ${currentTxId}, but ${verified}: its history was rolled back or replaced` +
        (cause ? ` (${cause})` : '') + ` (see ${TRUST_DOC})`,
    );
  }

  /** Throws unless the state is signed by the configured server key (no key: nothing to check). */
  checkSigned(next: { txId: number; alh: Buffer }, signature: Signature | null | undefined): void {
    if (this.signingKey) verifyStateSignature(signature, this.signingKey, this.opts.database, next.txId, next.alh);
  }

  /**
   * Makes `next` (the state a proof established, from the server with identity `serverUuid`)
   * the trusted state when it is newer, once it is durable. Callers check the proof first.
   */
  async advance(serverUuid: string, next: { txId: number; alh: Buffer }): Promise<void> {
    this.bind(serverUuid);
    const current = this.bound!.trusted;
    if (current && next.txId <= current.txId) return;
    const key = trustKey(serverUuid, this.opts.database);
    const state: TrustedState = { serverUuid: key.identity, database: key.database, txId: next.txId, alh: Buffer.from(next.alh) };
    try {
      await this.states.save(state);
    } catch (e) {
      throw this.unusable(e);
    }
    this.bound = { serverUuid, trusted: state };
  }

  /** The identity, then the signature, then advance. */
  async accept(serverUuid: string, next: { txId: number; alh: Buffer }, signature: Signature | null | undefined): Promise<void> {
    this.bind(serverUuid);
    this.checkSigned(next, signature);
    await this.advance(serverUuid, next);
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
  /** Why some state files were left where they are. */
  notes: string[];
}

/**
 * `immudb-audit trust reset`: moves the destination's binding and the trusted state (and an
 * auditor's checkpoint) of the identity it names aside, renamed with a timestamp. With a
 * binding that cannot be read, `serverUuid` names the identity; without it, the states of
 * this database under identities no other binding names are moved.
 */
export function resetTrust(stateDir: string, dest: Destination, serverUuid?: string): ResetResult {
  const binding = new ServerBinding(stateDir);
  const states = new TrustedStateStore(stateDir);
  const suffix = `.reset-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  const out: ResetResult = { moved: [], notes: [] };
  const moveAside = (file: string) => {
    try {
      statSync(file);
    } catch {
      return;
    }
    renameSync(file, file + suffix);
    out.moved.push({ from: file, to: file + suffix });
  };
  let identities: string[];
  if (serverUuid) {
    identities = [serverUuid];
  } else {
    let known: string | undefined;
    try {
      known = binding.read(dest.host, dest.port, dest.database);
    } catch (e) {
      out.notes.push(`${(e as Error).message}: its identity is unknown`);
    }
    if (known) identities = [known];
    else identities = unboundIdentities(stateDir, binding, dest);
  }
  moveAside(binding.file(dest.host, dest.port, dest.database));
  for (const id of identities) {
    const key = trustKey(id, dest.database);
    const file = states.path(key.identity, key.database);
    moveAside(file);
    moveAside(join(stateDir, key.identity, `${key.database}.audited.json`));
  }
  if (!out.moved.length) out.notes.push(`nothing to reset for ${dest.host}:${dest.port} database ${dest.database} in ${stateDir}`);
  return out;
}

/** Identities with a state of this database that no (readable) binding of another destination names. */
function unboundIdentities(stateDir: string, binding: ServerBinding, dest: Destination): string[] {
  let dirs: string[];
  try {
    dirs = readdirSync(stateDir).filter((d) => d !== 'bindings');
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
  const own = binding.file(dest.host, dest.port, dest.database);
  for (const f of files) {
    const path = join(stateDir, 'bindings', f);
    if (path === own) continue;
    try {
      const id = (JSON.parse(readFileSync(path, 'utf8')) as { server_uuid?: string }).server_uuid;
      if (id) claimed.add(id);
    } catch {
      // An unreadable binding of another destination claims nothing we could name.
    }
  }
  return dirs.filter((d) => !claimed.has(d));
}
