// The byte encodings of KV and tx metadata that enter entry digests and tx headers (v1).
// Attributes are written in a fixed order, each as a one-byte code followed by its payload;
// absent attributes are omitted, so "no metadata" and "empty metadata" encode identically.
import type { KVMetadata, TxMetadata } from '../immudb-types.js';
import { VerificationError } from './errors.js';
import { uint16be, uint64be } from './hashing.js';
import { parseInt64, parseUint64, requireBytes } from './shape.js';

const KV_DELETED = 0;
const KV_EXPIRES_AT = 1;
const KV_NON_INDEXABLE = 2;

const TX_TRUNCATED_UP_TO = 0;
const TX_EXTRA = 1;
/** Longest tx metadata "extra" immudb accepts. */
export const MAX_TX_EXTRA_LEN = 256;

export function kvMetadataBytes(md: KVMetadata | null | undefined, what = 'entry metadata'): Buffer {
  if (!md) return Buffer.alloc(0);
  const parts: Buffer[] = [];
  if (md.deleted) parts.push(Buffer.from([KV_DELETED]));
  if (md.expiration) {
    const expiresAt = parseInt64(md.expiration.expiresAt, `${what}.expiration.expiresAt`);
    parts.push(Buffer.from([KV_EXPIRES_AT]), uint64be(expiresAt));
  }
  if (md.nonIndexable) parts.push(Buffer.from([KV_NON_INDEXABLE]));
  return Buffer.concat(parts);
}

export function txMetadataBytes(md: TxMetadata | null | undefined, what = 'tx metadata'): Buffer {
  if (!md) return Buffer.alloc(0);
  const parts: Buffer[] = [];
  const truncated = parseUint64(md.truncatedTxID ?? '0', `${what}.truncatedTxID`);
  if (truncated > 0n) parts.push(Buffer.from([TX_TRUNCATED_UP_TO]), uint64be(truncated));
  const extra = md.extra === null || md.extra === undefined ? Buffer.alloc(0) : requireBytes(md.extra, `${what}.extra`);
  if (extra.length > MAX_TX_EXTRA_LEN) {
    throw new VerificationError(`${what}.extra is ${extra.length} bytes, immudb allows at most ${MAX_TX_EXTRA_LEN}`);
  }
  if (extra.length > 0) parts.push(Buffer.from([TX_EXTRA]), uint16be(extra.length), extra);
  return Buffer.concat(parts);
}
