// Tx headers: validation and the Alh chain. A header hashes to
//   innerHash = sha256(ts ‖ version ‖ <version-specific part> ‖ eH ‖ blTxId ‖ blRoot)
//   Alh       = sha256(txId ‖ prevAlh ‖ innerHash)
// where the version-specific part is uint16 nentries (v0) or uint16 mdLen ‖ md ‖ uint32 nentries (v1).
import type { TxHeader } from '../immudb-types.js';
import { VerificationError } from './errors.js';
import { sha256, uint16be, uint32be, uint64be } from './hashing.js';
import { txMetadataBytes } from './metadata.js';
import { parseInt64, parseTxId, requireHash, requireInt, requirePresent } from './shape.js';

export type HeaderVersion = 0 | 1;

/** A header after validation, with numbers as numbers and metadata already encoded. */
export interface ParsedTxHeader {
  id: number;
  prevAlh: Buffer;
  ts: bigint;
  version: HeaderVersion;
  metadata: Buffer;
  nentries: number;
  eH: Buffer;
  blTxId: number;
  blRoot: Buffer;
}

export function parseTxHeader(header: TxHeader | null | undefined, what = 'tx header'): ParsedTxHeader {
  const h = requirePresent(header, what);
  const id = parseTxId(h.id, `${what}.id`);
  const where = `${what} (tx ${id})`;
  const version = requireInt(h.version, `${where}.version`, 0, 1) as HeaderVersion;
  const metadata = txMetadataBytes(h.metadata, `${where}.metadata`);
  if (version === 0 && metadata.length > 0) throw new VerificationError(`${where} is version 0 but carries tx metadata`);
  const nentries = requireInt(h.nentries, `${where}.nentries`, 1, version === 0 ? 0xffff : 0x7fffffff);
  const blTxId = parseTxId(h.blTxId, `${where}.blTxId`, 0);
  if (blTxId >= id) throw new VerificationError(`${where}.blTxId (${blTxId}) must be lower than the tx id`);
  return {
    id,
    prevAlh: requireHash(h.prevAlh, `${where}.prevAlh`),
    ts: parseInt64(h.ts, `${where}.ts`),
    version,
    metadata,
    nentries,
    eH: requireHash(h.eH, `${where}.eH`),
    blTxId,
    blRoot: requireHash(h.blRoot, `${where}.blRoot`),
  };
}

function innerHashOf(h: ParsedTxHeader): Buffer {
  const versioned = h.version === 0
    ? [uint16be(h.nentries)]
    : [uint16be(h.metadata.length), h.metadata, uint32be(h.nentries)];
  return sha256(uint64be(h.ts), uint16be(h.version), ...versioned, h.eH, uint64be(h.blTxId), h.blRoot);
}

/** The next Alh in the chain: sha256(txId ‖ prevAlh ‖ innerHash). */
export function advanceAlh(prevAlh: Buffer, txId: number, innerHash: Buffer): Buffer {
  return sha256(uint64be(txId), prevAlh, innerHash);
}

export function txInnerHash(header: TxHeader | ParsedTxHeader): Buffer {
  return innerHashOf(isParsed(header) ? header : parseTxHeader(header));
}

export function txAlh(header: TxHeader | ParsedTxHeader): Buffer {
  const h = isParsed(header) ? header : parseTxHeader(header);
  return advanceAlh(h.prevAlh, h.id, innerHashOf(h));
}

function isParsed(h: TxHeader | ParsedTxHeader): h is ParsedTxHeader {
  return typeof (h as ParsedTxHeader).id === 'number' && typeof (h as ParsedTxHeader).ts === 'bigint';
}
