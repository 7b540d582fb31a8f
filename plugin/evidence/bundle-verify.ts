// Offline verification of an evidence bundle (docs/evidence-bundle.md): no network, only the
// bundle, optionally the server's public key and a checkpoint. Every failure is an
// EvidenceError naming the part that does not hold. Pure, apart from loading the schema once.
import type { ValidateFunction } from 'ajv/dist/2020.js';
import { createRequire } from 'node:module';
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { entryKey } from '../store/key-layout.js';
import { entryDigest, parseServerPublicKey, parseTxHeader, txAlh, verifyDualProof, verifyEntryInclusion, verifyStateSignature } from '../store/proofs/index.js';
import { verifyCheckpointSignatures, parseCheckpoint, type CheckpointSignatures, type ParsedCheckpoint } from './checkpoint-note.js';
import {
  checkPart, dualProofOf, EvidenceError, fromBase64, fromHex, inclusionProofOf, kvMetadataOf, txHeaderOf,
  type DualProofJson, type InclusionProofJson, type KvMetadataJson, type TxHeaderJson,
} from './json-form.js';

export const BUNDLE_FORMAT = 'kong-immudb-audit.evidence-bundle';

export interface BundleEntryV1 {
  audit_id: string;
  key: string;
  value: string;
  metadata: KvMetadataJson | null;
  entry: unknown;
  tx_header: TxHeaderJson;
  inclusion_proof: InclusionProofJson;
  dual_proof: DualProofJson;
}

export interface EvidenceBundleV1 {
  format: typeof BUNDLE_FORMAT;
  version: 1;
  created_at: string;
  created_by: string;
  server_uuid: string;
  database: string;
  log: string;
  prefix: string;
  state: {
    tx_id: number;
    alh: string;
    tx_header: TxHeaderJson;
    signature: string | null;
    public_key: string | null;
    public_key_fingerprint: string | null;
    public_key_pinned: boolean;
  };
  entries: BundleEntryV1[];
  checkpoint: { note: string; tx_header: TxHeaderJson; dual_proof: DualProofJson } | null;
}

export interface BundleVerification {
  serverUuid: string;
  database: string;
  state: { txId: number; alh: string };
  entries: Array<{ auditId: string; txId: number }>;
  /** 'pinned': valid under the key given to the verifier; 'unpinned': valid under the bundle's own key only. */
  signature: 'pinned' | 'unpinned' | 'absent';
  fingerprint: string | null;
  checkpoint: { txId: number; time: string } | null;
  /**
   * What the signatures of each checkpoint used were checked to be: the bundle's
   * (`checkpoint.note`) and the verifier's own copy (`--checkpoint`), when present.
   */
  checkpointSignatures: Partial<Record<'checkpoint.note' | '--checkpoint', CheckpointSignatures>>;
}

let validator: ValidateFunction | undefined;
function validate(): ValidateFunction {
  if (!validator) {
    const schema = JSON.parse(readFileSync(new URL('../../../schemas/evidence-bundle.v1.json', import.meta.url), 'utf8')) as object;
    // Loaded on first use: every CLI command imports this module, few verify bundles.
    const { Ajv2020 } = createRequire(import.meta.url)('ajv/dist/2020.js') as typeof import('ajv/dist/2020.js');
    validator = new Ajv2020({ allErrors: true, strict: true }).compile(schema);
  }
  return validator;
}

/** The SHA-256 fingerprint of a public key's SPKI DER, as bundles state it. */
export function keyFingerprint(spkiDer: Buffer): string {
  return `sha256:${createHash('sha256').update(spkiDer).digest('hex')}`;
}

/** immudb sends its key as an uncompressed P-256 point; as SPKI DER it gets this fixed header. */
const P256_SPKI_HEADER = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
export function spkiOfImmudbKey(raw: Buffer): Buffer | null {
  return raw.length === 65 && raw[0] === 0x04 ? Buffer.concat([P256_SPKI_HEADER, raw]) : null;
}

/** Parses bundle text: JSON, then the schema (a failure names the JSON path). */
export function parseBundle(text: string): EvidenceBundleV1 {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new EvidenceError('bundle', `is not JSON (${(e as Error).message})`);
  }
  const v = validate();
  if (!v(data)) {
    // The deepest error names the part (a `oneOf` of null or an object also fails "must be null").
    const err = [...(v.errors ?? [])].sort((a, b) => b.instancePath.split('/').length - a.instancePath.split('/').length)[0];
    const path = err?.instancePath ? err.instancePath.slice(1).replace(/\/(\d+)(?=\/|$)/g, '[$1]').replace(/\//g, '.') : '';
    throw new EvidenceError(path ? `bundle ${path.replace(/^(\d+)/, '[$1]')}` : 'bundle', `does not match schemas/evidence-bundle.v1.json: ${err?.message ?? 'invalid'}`);
  }
  return data as EvidenceBundleV1;
}

export interface VerifyBundleOptions {
  /** immudb's state signing key (PEM): the state must carry a valid signature under it. */
  publicKeyPem?: string;
  /** A checkpoint (note text) the state must be proven to extend. */
  checkpointNote?: string;
  /** The auditor key that must have signed the checkpoints: the bundle's and the given one. */
  auditor?: { name: string; key: KeyObject };
}

export function verifyBundle(b: EvidenceBundleV1, opts: VerifyBundleOptions = {}): BundleVerification {
  // The state: header, Alh, signature.
  const stateHeader = txHeaderOf(b.state.tx_header, 'state.tx_header');
  const parsedState = checkPart('state.tx_header', () => parseTxHeader(stateHeader, 'header'));
  const stateAlh = fromHex(b.state.alh, 'state.alh', 32);
  if (parsedState.id !== b.state.tx_id) throw new EvidenceError('state.tx_header', `is the header of tx ${parsedState.id}, the state is tx ${b.state.tx_id}`);
  if (!txAlh(parsedState).equals(stateAlh)) throw new EvidenceError('state.alh', `is not the Alh of the state's tx header (tx ${b.state.tx_id})`);
  const { signature, fingerprint } = checkSignature(b, stateAlh, opts.publicKeyPem);

  // Every entry: its value and key, its inclusion in its tx, its tx linked to the state.
  const entries = b.entries.map((e, i) => {
    const part = `entries[${i}]`;
    const value = fromBase64(e.value, `${part}.value`);
    if (e.key !== entryKey(b.prefix, e.audit_id)) throw new EvidenceError(`${part}.key`, `${JSON.stringify(e.key)} is not the key of audit id ${e.audit_id} under prefix ${b.prefix}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(value.toString('utf8'));
    } catch {
      throw new EvidenceError(`${part}.value`, 'is not an audit entry (not JSON)');
    }
    if (JSON.stringify(parsed) !== JSON.stringify(e.entry)) throw new EvidenceError(`${part}.entry`, 'differs from the proven value');
    if ((parsed as { id?: unknown } | null)?.id !== e.audit_id) throw new EvidenceError(`${part}.value`, `is not the entry of audit id ${e.audit_id}`);
    const header = txHeaderOf(e.tx_header, `${part}.tx_header`);
    const h = checkPart(`${part}.tx_header`, () => parseTxHeader(header, 'header'));
    const inclusion = inclusionProofOf(e.inclusion_proof, `${part}.inclusion_proof`);
    const metadata = kvMetadataOf(e.metadata, `${part}.metadata`);
    checkPart(`${part}.inclusion_proof`, () => {
      const digest = entryDigest(h.version, { userKey: Buffer.from(e.key, 'utf8'), userValue: value, metadata }, 'entry');
      verifyEntryInclusion(inclusion, digest, h.eH, h.nentries, `key and value not included in tx ${h.id}`);
    });
    if (h.id > b.state.tx_id) throw new EvidenceError(`${part}.tx_header`, `tx ${h.id} is after the state's tx ${b.state.tx_id}`);
    const dp = dualProofOf(e.dual_proof, header, stateHeader, `${part}.dual_proof`);
    checkPart(`${part}.dual_proof`, () => verifyDualProof(dp, h.id, b.state.tx_id, txAlh(h), stateAlh));
    return { auditId: e.audit_id, txId: h.id };
  });

  // The checkpoint the state extends; its signatures, and those of the verifier's own copy, are
  // checked under the keys given (decisions #45).
  const keys = { serverKey: opts.publicKeyPem ? parseServerPublicKey(opts.publicKeyPem) : undefined, auditor: opts.auditor };
  const checkpointSignatures: BundleVerification['checkpointSignatures'] = {};
  let checkpoint: BundleVerification['checkpoint'] = null;
  if (b.checkpoint) {
    const c = parseCheckpoint(b.checkpoint.note, 'checkpoint.note');
    if (c.database !== b.database) throw new EvidenceError('checkpoint.note', `is a checkpoint of database ${c.database}, the bundle's is ${b.database}`);
    checkpointSignatures['checkpoint.note'] = verifyCheckpointSignatures(c, keys, 'checkpoint.note');
    const header = txHeaderOf(b.checkpoint.tx_header, 'checkpoint.tx_header');
    const h = checkPart('checkpoint.tx_header', () => parseTxHeader(header, 'header'));
    if (h.id !== c.txId || !txAlh(h).equals(c.alh)) throw new EvidenceError('checkpoint.tx_header', `is not the header of the checkpoint's tx ${c.txId} and Alh`);
    if (c.txId > b.state.tx_id) throw new EvidenceError('checkpoint.note', `tx ${c.txId} is after the state's tx ${b.state.tx_id}`);
    const dp = dualProofOf(b.checkpoint.dual_proof, header, stateHeader, 'checkpoint.dual_proof');
    checkPart('checkpoint.dual_proof', () => verifyDualProof(dp, c.txId, b.state.tx_id, c.alh, stateAlh));
    checkpoint = { txId: c.txId, time: c.time };
  }
  if (opts.checkpointNote !== undefined) {
    const given = parseCheckpoint(opts.checkpointNote, '--checkpoint');
    checkpointSignatures['--checkpoint'] = verifyCheckpointSignatures(given, keys, '--checkpoint');
    requireGivenCheckpoint(b, given, stateAlh);
  } else if (!b.checkpoint && opts.auditor) {
    throw new EvidenceError('checkpoint', 'is absent, but an auditor key was given to check its signature');
  }

  return {
    serverUuid: b.server_uuid,
    database: b.database,
    state: { txId: b.state.tx_id, alh: b.state.alh },
    entries,
    signature,
    fingerprint,
    checkpoint,
    checkpointSignatures,
  };
}

/** The checkpoint the verifier holds must be the one the bundle proves from (or the state itself). */
function requireGivenCheckpoint(b: EvidenceBundleV1, given: ParsedCheckpoint, stateAlh: Buffer): void {
  if (given.database !== b.database) throw new EvidenceError('--checkpoint', `is a checkpoint of database ${given.database}, the bundle's is ${b.database}`);
  if (given.txId === b.state.tx_id) {
    if (!given.alh.equals(stateAlh)) throw new EvidenceError('state.alh', `differs from the given checkpoint's Alh of the same tx ${given.txId}: two histories`);
    return;
  }
  if (!b.checkpoint) throw new EvidenceError('checkpoint', `is absent: the bundle proves nothing about the given checkpoint (tx ${given.txId})`);
  const held = parseCheckpoint(b.checkpoint.note, 'checkpoint.note');
  if (held.txId !== given.txId || !held.alh.equals(given.alh)) {
    throw new EvidenceError('checkpoint.note', `is tx ${held.txId}, Alh ${held.alh.toString('hex').slice(0, 16)}..., not the given checkpoint (tx ${given.txId}, Alh ${given.alh.toString('hex').slice(0, 16)}...)`);
  }
}

function checkSignature(b: EvidenceBundleV1, stateAlh: Buffer, publicKeyPem?: string): Pick<BundleVerification, 'signature' | 'fingerprint'> {
  const s = b.state;
  let bundleKey: KeyObject | undefined;
  if (s.public_key !== null) {
    const der = fromBase64(s.public_key, 'state.public_key');
    if (s.public_key_fingerprint !== keyFingerprint(der)) throw new EvidenceError('state.public_key_fingerprint', 'is not the fingerprint of state.public_key');
    try {
      bundleKey = parseServerPublicKey(createPublicKey({ key: der, format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' }).toString());
    } catch (e) {
      throw new EvidenceError('state.public_key', (e as Error).message);
    }
  } else if (s.public_key_fingerprint !== null) {
    throw new EvidenceError('state.public_key_fingerprint', 'is given without state.public_key');
  }
  const sig = s.signature === null ? null : { signature: fromBase64(s.signature, 'state.signature'), publicKey: Buffer.alloc(0) };
  if (publicKeyPem !== undefined) {
    const pinned = parseServerPublicKey(publicKeyPem);
    const fp = keyFingerprint(pinned.export({ type: 'spki', format: 'der' }));
    if (!sig) throw new EvidenceError('state.signature', 'is absent, but a public key was given: the state is not signed');
    if (s.public_key_fingerprint !== null && s.public_key_fingerprint !== fp) {
      throw new EvidenceError('state.public_key_fingerprint', `${s.public_key_fingerprint} is not the given key's ${fp}`);
    }
    checkPart('state.signature', () => verifyStateSignature(sig, pinned, b.database, s.tx_id, stateAlh));
    return { signature: 'pinned', fingerprint: fp };
  }
  if (!sig) return { signature: 'absent', fingerprint: s.public_key_fingerprint };
  if (!bundleKey) throw new EvidenceError('state.public_key', 'is absent: the signature cannot be checked (give --public-key)');
  checkPart('state.signature', () => verifyStateSignature(sig, bundleKey, b.database, s.tx_id, stateAlh));
  return { signature: 'unpinned', fingerprint: s.public_key_fingerprint };
}
