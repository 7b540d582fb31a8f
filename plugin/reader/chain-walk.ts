// The verified chain walk shared by `verify --all`, the auditor's index, export and bundles: one
// dual proof establishes the Alh of the last transaction of a range against the trusted state
// (signed when a key is configured), then a plain TxScan reads every transaction of the range and
// TxChain checks them as one Alh chain that must end in that proven Alh. Each transaction is
// handed to the caller once its entries and its link to the one before are checked; the range as
// a whole holds only when walk() returns.
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { ImmudbClient } from '../store/immudb-client.js';
import { txScanPages } from '../store/tx-scan-pages.js';
import type { TrustedSession } from '../store/trusted-session.js';
import { INITIAL_ALH, parseTxHeader, TxChain, txAlh, verifyVerifiableTx, VerificationError, type ParsedTxHeader } from '../store/proofs/index.js';
import { EntryTypeAction } from '../store/immudb-types.js';

/** An audit entry of a verified transaction: its key and value as written (no store prefixes). */
export interface VerifiedEntry {
  key: Buffer;
  value: Buffer;
}

/** A transaction of the walk, checked: its header, its Alh, and its entries under the prefix. */
export interface WalkedTx {
  id: number;
  /** Commit time (the header's ts, seconds) in ms. */
  time: number;
  header: ParsedTxHeader;
  alh: Buffer;
  /** The entries whose keys start with the walk's prefix (values included, checked). */
  entries: VerifiedEntry[];
  /** Those under the lifecycle prefix, when the walk was given one (coverage reports). */
  lifecycle: VerifiedEntry[];
}

/** A transaction's Alh, proven by a dual proof against the trusted state. */
export interface ProvenTx {
  txId: number;
  alh: Buffer;
  /** Commit time (ms) of the proven tx. */
  time: number;
}

/** Whether a stored key (behind its one-byte prefix) starts with `prefix`, without a view per entry. */
function hasPrefix(storedKey: Buffer, prefix: Buffer): boolean {
  return storedKey.length > prefix.length && prefix.compare(storedKey, 1, 1 + prefix.length) === 0;
}

/** Entries checked between two turns of the event loop (see walk). */
const YIELD_ENTRIES = 512;

export class ChainWalk {
  constructor(
    private readonly client: ImmudbClient,
    private readonly session: TrustedSession,
    /** Keys (as written, without the store's one-byte prefix) whose entries are handed over. */
    private readonly entryPrefix: Buffer,
    /** A second prefix handed over apart (lifecycle entries, for coverage reports). */
    private readonly lifecyclePrefix?: Buffer,
  ) {}

  /**
   * Tx `txId` proven against the trusted state, in whichever order they are (on first contact,
   * against itself), and, when a key is configured, the state the proof ends in must be signed.
   * Returns the tx's own Alh and the state the proof established (the newer of the two).
   */
  async prove(txId: number): Promise<{ tx: ProvenTx; state: { txId: number; alh: Buffer } }> {
    const vtx = await this.client.verifiableTxById(txId, this.session.provenSince(), EntryTypeAction.EXCLUDE);
    try {
      const state = verifyVerifiableTx(vtx, this.session.anchor(), { listedEntries: 'none' });
      // verifyVerifiableTx checked that this header hashes to the Alh the dual proof linked.
      const header = parseTxHeader(vtx.tx!.header, `tx ${txId} header`);
      if (header.id !== txId) throw new VerificationError(`asked for tx ${txId}, immudb proved tx ${header.id}`);
      this.session.checkSigned(state, vtx.signature);
      return { tx: { txId, alh: txAlh(header), time: Number(header.ts) * 1000 }, state };
    } catch (e) {
      throw new VerificationError(`tx ${txId}: ${(e as Error).message}`);
    }
  }

  /**
   * Walks transactions `first`..`end.txId` as one Alh chain ending in `end.alh`: anchored at its
   * start when the Alh before it is known (tx 1, or the trusted tx right before the range),
   * checked against the trusted Alh where it passes the trusted tx. `onTx` sees each transaction
   * once checked; a returned promise is awaited before the walk goes on.
   */
  async walk(first: number, end: { txId: number; alh: Buffer }, onTx: (tx: WalkedTx) => void | Promise<void>): Promise<void> {
    const trusted = this.session.trusted;
    const anchor = first === 1 ? INITIAL_ALH : trusted?.txId === first - 1 ? trusted.alh : undefined;
    const chain = new TxChain(first, anchor);
    if (trusted && trusted.txId >= first && trusted.txId <= end.txId) chain.expectAlh(trusted.txId, trusted.alh);
    const prefix = this.entryPrefix;
    const other = this.lifecyclePrefix;
    let unyielded = 0;
    // Pages read one ahead (store/tx-scan-pages.ts): each is checked here, in order, before the next.
    for await (const { txs } of txScanPages(this.client, first, end.txId)) {
      for (const tx of txs) {
        const { header, alh } = chain.append(tx);
        const entries: VerifiedEntry[] = [];
        const lifecycle: VerifiedEntry[] = [];
        const listed = tx.entries;
        for (let i = 0; i < listed.length; i++) {
          const e = listed[i]!;
          // Keys and values as stored carry a one-byte prefix (plain key, plain value).
          const into = hasPrefix(e.key, prefix) ? entries : other && hasPrefix(e.key, other) ? lifecycle : undefined;
          if (!into) continue;
          const key = e.key.subarray(1);
          // Audit entries are checked by their values (the chain checked the values it got).
          if (!e.value?.length) throw new VerificationError(`tx ${header.id} entry ${i} (${key.toString()}): its value was not sent`);
          into.push({ key, value: e.value.subarray(1) });
        }
        const r = onTx({ id: header.id, time: Number(header.ts) * 1000, header, alh, entries, lifecycle });
        if (r) await r;
        // Give the event loop a turn every YIELD_ENTRIES entries: the page read ahead is received
        // meanwhile (grpc-js reads it from the socket and grants immudb HTTP/2 window to send
        // more) instead of only once the whole page before it was checked.
        unyielded += tx.entries.length;
        if (unyielded >= YIELD_ENTRIES) {
          unyielded = 0;
          await nextTurn();
        }
      }
    }
    chain.finish(end.txId, end.alh);
  }

  /**
   * A transaction's commit time as the server says (unverified: TxById without proof), to find
   * where a time range starts and ends; the walk then checks the times it relied on.
   */
  async claimedTime(txId: number): Promise<number> {
    const tx = await this.client.txById(txId, EntryTypeAction.EXCLUDE);
    return Number(parseTxHeader(tx.header, `tx ${txId} header`).ts) * 1000;
  }
}
