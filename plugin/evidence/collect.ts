// What the evidence commands ask immudb for: the current state proven against the auditor's
// trusted state, each entry with its inclusion proof and a dual proof to that state, and a
// checkpoint's consistency with it. Every answer is checked with the proof functions before it is
// used; the bundle is then verified once more, offline, before it is written.
import { isKeyNotFoundError } from '../store/immudb-client.js';
import { EntryTypeAction, type Signature, type TxHeader } from '../store/immudb-types.js';
import { entryKey } from '../store/key-layout.js';
import { toSafeInt } from '../store/longs.js';
import { parseServerPublicKey, parseTxHeader, verifyVerifiableEntry, verifyVerifiableTx, VerificationError } from '../store/proofs/index.js';
import { checkAuditId, NotFoundError, type AuditReader } from '../reader/audit-reader.js';
import { BUNDLE_FORMAT, keyFingerprint, spkiOfImmudbKey, type BundleEntryV1, type EvidenceBundleV1 } from './bundle-verify.js';
import { checkpointOrigin, type Checkpoint, type ParsedCheckpoint } from './checkpoint-note.js';
import { dualProofJson, inclusionProofJson, kvMetadataJson, txHeaderJson } from './json-form.js';

export interface ProvenState {
  serverUuid: string;
  database: string;
  log: string;
  txId: number;
  alh: Buffer;
  header: TxHeader;
  /** immudb's signature of this state, when the server signs. */
  signature: Signature | null;
}

function signatureOf(s: Signature | null | undefined): Signature | null {
  return s?.signature?.length ? s : null;
}

/**
 * The server's current state, proven against this auditor's trusted state (a dual proof, and the
 * signature when --server-public-key is set), which then advances to it.
 */
export async function proveCurrentState(reader: AuditReader): Promise<ProvenState> {
  const { client, session } = reader.proofSource;
  const address = `${client.options.host}:${client.options.port}`;
  const n = toSafeInt((await client.currentState()).txId, 'current tx id');
  session.refuseRollback(n, { serverUuid: client.serverUuid, address });
  const vtx = await client.verifiableTxById(n, session.provenSince(), EntryTypeAction.EXCLUDE);
  const next = verifyVerifiableTx(vtx, session.anchor(), { listedEntries: 'none' });
  if (next.txId !== n) throw new VerificationError(`asked for the state of tx ${n}, immudb proved tx ${next.txId}`);
  session.checkSigned(next, vtx.signature);
  await session.advance(client.serverUuid, next, address);
  return {
    serverUuid: client.serverUuid, database: client.database, log: session.log,
    txId: n, alh: next.alh, header: vtx.tx!.header!, signature: signatureOf(vtx.signature),
  };
}

/** The note's content for a proven state (signed by checkpoint-note.ts). */
export function checkpointOf(s: ProvenState, time = new Date()): Checkpoint {
  return {
    origin: checkpointOrigin(s.serverUuid, s.database), txId: s.txId, alh: s.alh, time: time.toISOString(),
    serverUuid: s.serverUuid, database: s.database, log: s.log, immudbSignature: s.signature?.signature ?? null,
  };
}

/**
 * The server proves that its history at `state` extends the checkpoint: a dual proof from the
 * checkpoint's tx and Alh to the state's. Returns the proof (its source header is the
 * checkpoint's tx header). A shorter history or a failed proof is a VerificationError.
 */
export async function proveExtends(reader: AuditReader, c: ParsedCheckpoint, state: ProvenState) {
  const { client } = reader.proofSource;
  if (c.database !== state.database) throw new VerificationError(`the checkpoint is of database ${c.database}, not ${state.database}`);
  if (c.txId > state.txId) {
    throw new VerificationError(
      `immudb at ${client.options.host}:${client.options.port} (server ${state.serverUuid}) is at tx ${state.txId}, before the checkpoint's tx ${c.txId} (taken ${c.time} from server ${c.serverUuid}): its history was rolled back or replaced, or it is a lagging replica`,
    );
  }
  const vtx = await client.verifiableTxById(state.txId, c.txId, EntryTypeAction.EXCLUDE);
  let reached;
  try {
    reached = verifyVerifiableTx(vtx, { txId: c.txId, alh: c.alh }, { listedEntries: 'none' });
  } catch (e) {
    throw new VerificationError(`the log does not extend the checkpoint (tx ${c.txId}, taken ${c.time} from server ${c.serverUuid}): ${(e as Error).message}`);
  }
  if (reached.txId !== state.txId || !reached.alh.equals(state.alh)) {
    throw new VerificationError(`the consistency proof from checkpoint tx ${c.txId} leads to another state than the proven tx ${state.txId}`);
  }
  return vtx.dualProof!;
}

export interface BundleRequest {
  ids: string[];
  prefix: string;
  checkpoint?: ParsedCheckpoint & { note: string };
  /** PEM of the key the auditor pinned (--server-public-key), if any. */
  serverPublicKey?: string;
  createdBy: string;
}

/** Reads each entry with its proofs against one proven state of the log, and assembles the bundle. */
export async function collectBundle(reader: AuditReader, req: BundleRequest): Promise<EvidenceBundleV1> {
  const { client } = reader.proofSource;
  const ids = [...new Set(req.ids.map(checkAuditId))];
  if (!ids.length) throw new Error('no entries to bundle');
  // An entry written after the state was proven would be proven against a later state: prove the
  // newer state and read again (bounded: a log written to faster than we read fails).
  for (let attempt = 0; attempt < 3; attempt++) {
    const state = await proveCurrentState(reader);
    const entries: BundleEntryV1[] = [];
    let later = false;
    for (const id of ids) {
      const key = entryKey(req.prefix, id);
      let ve;
      try {
        ve = await client.verifiableGet(Buffer.from(key), state.txId);
      } catch (e) {
        if (isKeyNotFoundError(e)) throw new NotFoundError(`audit entry ${id} not found in immudb database ${state.database} (key ${key})`);
        throw e;
      }
      const entryTx = toSafeInt(ve.entry!.tx, 'entry tx');
      if (entryTx > state.txId) {
        later = true;
        break;
      }
      const reached = verifyVerifiableEntry(ve, { txId: state.txId, alh: state.alh }, { key: Buffer.from(key) });
      if (reached.txId !== state.txId || !reached.alh.equals(state.alh)) throw new VerificationError(`entry ${id}: proven against another state than tx ${state.txId}`);
      const dp = ve.verifiableTx!.dualProof!;
      if (parseTxHeader(dp.sourceTxHeader).id !== entryTx || parseTxHeader(dp.targetTxHeader).id !== state.txId) {
        throw new VerificationError(`entry ${id}: the dual proof does not lead from tx ${entryTx} to tx ${state.txId}`);
      }
      const value = ve.entry!.value;
      let parsed: unknown;
      try {
        parsed = JSON.parse(value.toString('utf8'));
      } catch {
        throw new VerificationError(`entry ${id}: its value is not JSON`);
      }
      entries.push({
        audit_id: id, key, value: value.toString('base64'), metadata: kvMetadataJson(ve.entry!.metadata), entry: parsed,
        tx_header: txHeaderJson(ve.verifiableTx!.tx!.header!), inclusion_proof: inclusionProofJson(ve.inclusionProof!), dual_proof: dualProofJson(dp),
      });
    }
    if (later) continue;
    let checkpoint: EvidenceBundleV1['checkpoint'] = null;
    if (req.checkpoint) {
      const dp = await proveExtends(reader, req.checkpoint, state);
      checkpoint = { note: req.checkpoint.note, tx_header: txHeaderJson(dp.sourceTxHeader!), dual_proof: dualProofJson(dp) };
    }
    const key = publicKeyOf(state.signature, req.serverPublicKey);
    return {
      format: BUNDLE_FORMAT, version: 1, created_at: new Date().toISOString(), created_by: req.createdBy,
      server_uuid: state.serverUuid, database: state.database, log: state.log, prefix: req.prefix,
      state: {
        tx_id: state.txId, alh: state.alh.toString('hex'), tx_header: txHeaderJson(state.header),
        signature: state.signature ? state.signature.signature.toString('base64') : null,
        public_key: key ? key.der.toString('base64') : null,
        public_key_fingerprint: key ? keyFingerprint(key.der) : null,
        public_key_pinned: Boolean(key?.pinned),
      },
      entries,
      checkpoint,
    };
  }
  throw new Error('the log grew past every state proven for the bundle three times in a row; try again');
}

/** The pinned key, else the one immudb sent along with its signature. */
function publicKeyOf(signature: Signature | null, pinnedPem?: string): { der: Buffer; pinned: boolean } | null {
  if (pinnedPem) return { der: parseServerPublicKey(pinnedPem).export({ type: 'spki', format: 'der' }), pinned: true };
  const der = signature?.publicKey ? spkiOfImmudbKey(signature.publicKey) : null;
  return der ? { der, pinned: false } : null;
}
