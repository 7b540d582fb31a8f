// Types of the immudb gRPC messages this project exchanges, as @grpc/proto-loader decodes them
// with our options (keepCase, longs as strings, bytes as Buffer, defaults filled in).
// Field names are immudb's own (schema.proto), so they read the same as immudb's docs.

/** uint64/int64 on the wire; decoded as decimal strings to keep every bit. */
export type Long = string;

export interface KVMetadata {
  deleted: boolean;
  expiration: { expiresAt: Long } | null;
  nonIndexable: boolean;
}

export interface TxMetadata {
  truncatedTxID: Long;
  extra: Buffer;
}

export interface TxHeader {
  id: Long;
  prevAlh: Buffer;
  ts: Long;
  nentries: number;
  eH: Buffer;
  blTxId: Long;
  blRoot: Buffer;
  version: number;
  metadata: TxMetadata | null;
}

export interface TxEntry {
  key: Buffer;
  hValue: Buffer;
  vLen: number;
  metadata: KVMetadata | null;
  value: Buffer;
}

export interface Reference {
  tx: Long;
  key: Buffer;
  atTx: Long;
  metadata: KVMetadata | null;
  revision: Long;
}

export interface Entry {
  tx: Long;
  key: Buffer;
  value: Buffer;
  referencedBy: Reference | null;
  metadata: KVMetadata | null;
  expired: boolean;
  revision: Long;
}

export interface Tx {
  header: TxHeader | null;
  entries: TxEntry[];
  kvEntries: Entry[];
  zEntries: unknown[];
}

export interface LinearProof {
  sourceTxId: Long;
  TargetTxId: Long;
  terms: Buffer[];
}

export interface InclusionProof {
  leaf: number;
  width: number;
  terms: Buffer[];
}

export interface LinearAdvanceProof {
  linearProofTerms: Buffer[];
  inclusionProofs: InclusionProof[];
}

export interface DualProof {
  sourceTxHeader: TxHeader | null;
  targetTxHeader: TxHeader | null;
  inclusionProof: Buffer[];
  consistencyProof: Buffer[];
  targetBlTxAlh: Buffer;
  lastInclusionProof: Buffer[];
  linearProof: LinearProof | null;
  LinearAdvanceProof: LinearAdvanceProof | null;
}

export interface Signature {
  publicKey: Buffer;
  signature: Buffer;
}

export interface VerifiableTx {
  tx: Tx | null;
  dualProof: DualProof | null;
  signature: Signature | null;
}

export interface VerifiableEntry {
  entry: Entry | null;
  verifiableTx: VerifiableTx | null;
  inclusionProof: InclusionProof | null;
}

export interface ImmutableState {
  db: string;
  txId: Long;
  txHash: Buffer;
  signature: Signature | null;
  precommittedTxId: Long;
  precommittedTxHash: Buffer;
}

export interface KeyValueInput {
  key: Buffer;
  value: Buffer;
}

export type PreconditionInput =
  | { keyMustNotExist: { key: Buffer } }
  | { keyMustExist: { key: Buffer } }
  | { keyNotModifiedAfterTX: { key: Buffer; txID: string } };

export enum EntryTypeAction {
  EXCLUDE = 0,
  ONLY_DIGEST = 1,
  RAW_VALUE = 2,
  RESOLVE = 3,
}
