// Digests of tx entries, the leaves of a tx's entry tree.
//   v0: sha256(key ‖ hValue)                       (no metadata allowed)
//   v1: sha256(uint16 mdLen ‖ md ‖ uint16 kLen ‖ key ‖ hValue)
// hValue = sha256(stored value). immudb's key-value layer stores every key and value with a
// one-byte prefix (0x00 for plain keys and plain values): TxEntry.key and TxEntry.value carry it,
// while the key/value of a KeyValue we send or of an Entry we read do not.
import type { KVMetadata, TxEntry } from '../immudb-types.js';
import { VerificationError } from './errors.js';
import { HASH_SIZE, sha256 } from './hashing.js';
import { sha256Small, SMALL_MAX, smallInput } from './sha256-small.js';
import { kvMetadataBytes } from './metadata.js';
import { requireBytes, requireHash } from './shape.js';

/** Prefix of plain keys in the store (immudb's SetKeyPrefix). */
export const PLAIN_KEY_PREFIX = 0x00;
/** Prefix of plain values in the store (immudb's PlainValuePrefix). */
export const PLAIN_VALUE_PREFIX = 0x00;
/** The one-byte prefix of a plain value in the store, as a buffer to hash in front of a user value. */
export const STORED_PLAIN_VALUE_PREFIX = Buffer.from([PLAIN_VALUE_PREFIX]);

export function storedKeyOf(userKey: Buffer): Buffer {
  return Buffer.concat([Buffer.from([PLAIN_KEY_PREFIX]), userKey]);
}

export function storedValueOf(userValue: Buffer): Buffer {
  return Buffer.concat([STORED_PLAIN_VALUE_PREFIX, userValue]);
}

/**
 * What an entry digest is computed from. Exactly one key form and one value form:
 * - `storedKey` is the key as in TxEntry.key (with its prefix byte), `userKey` the key as in a
 *   KeyValue/Entry (prefix added here);
 * - `hValue` is sha256 of the stored value (TxEntry.hValue), `storedValue` the value with its
 *   prefix byte (TxEntry.value), `userValue` the value as in a KeyValue/Entry (prefix added here).
 */
export type EntryDigestInput = ({ storedKey: Buffer; userKey?: never } | { userKey: Buffer; storedKey?: never })
  & ({ hValue: Buffer; storedValue?: never; userValue?: never }
    | { storedValue: Buffer; hValue?: never; userValue?: never }
    | { userValue: Buffer; hValue?: never; storedValue?: never })
  & { metadata?: KVMetadata | null };

export function entryDigest(version: number, entry: EntryDigestInput, what = 'entry'): Buffer {
  const key = entry.storedKey !== undefined
    ? requireBytes(entry.storedKey, `${what}.key`)
    : storedKeyOf(requireBytes(entry.userKey, `${what}.key`));
  let hValue: Buffer;
  if (entry.hValue !== undefined) hValue = requireHash(entry.hValue, `${what}.hValue`);
  else if (entry.storedValue !== undefined) hValue = sha256(requireBytes(entry.storedValue, `${what}.value`));
  else hValue = sha256(STORED_PLAIN_VALUE_PREFIX, requireBytes(entry.userValue, `${what}.value`));
  return digestOf(version, key, hValue, kvMetadataBytes(entry.metadata, `${what}.metadata`), what);
}

/**
 * The digest from its validated parts: the stored key (with its prefix byte), the 32-byte
 * hValue and the encoded KV metadata. `what` names the entry in errors (a function, so that
 * callers checking many entries build the text only when a check fails).
 */
export function digestOf(version: number, storedKey: Buffer, hValue: Buffer, md: Buffer, what: string | (() => string)): Buffer {
  const out = Buffer.allocUnsafe(HASH_SIZE);
  digestAt(version, storedKey, hValue, md, out, 0, what);
  return out;
}

/** digestOf written to out[off..off+32) (an entry tree's leaf buffer), allocating nothing for usual sizes. */
export function digestAt(version: number, storedKey: Buffer, hValue: Buffer, md: Buffer, out: Uint8Array, off: number, what: string | (() => string)): void {
  const name = () => (typeof what === 'string' ? what : what());
  switch (version) {
    case 0: {
      if (md.length > 0) throw new VerificationError(`${name()} carries metadata, which version 0 tx headers cannot have`);
      // key ‖ hValue
      const len = storedKey.length + hValue.length;
      if (len > SMALL_MAX) {
        out.set(sha256(storedKey, hValue), off);
        return;
      }
      smallInput.set(storedKey, 0);
      smallInput.set(hValue, storedKey.length);
      sha256Small(len, out, off);
      return;
    }
    case 1: {
      if (storedKey.length > 0xffff) throw new VerificationError(`${name()}.key is too long (${storedKey.length} bytes)`);
      // uint16 mdLen ‖ md ‖ uint16 kLen ‖ key ‖ hValue
      const len = 2 + md.length + 2 + storedKey.length + hValue.length;
      const small = len <= SMALL_MAX;
      const buf = small ? smallInput : Buffer.allocUnsafe(len);
      let o = 0;
      buf[o++] = md.length >>> 8;
      buf[o++] = md.length & 0xff;
      buf.set(md, o);
      o += md.length;
      buf[o++] = storedKey.length >>> 8;
      buf[o++] = storedKey.length & 0xff;
      buf.set(storedKey, o);
      o += storedKey.length;
      buf.set(hValue, o);
      if (small) sha256Small(len, out, off);
      else out.set(sha256(buf), off);
      return;
    }
    default:
      throw new VerificationError(`${name()}: unsupported tx header version ${version}`);
  }
}

/** Digest of an entry as listed in Tx.entries (stored key, hValue, metadata). */
export function txEntryDigest(version: number, entry: TxEntry, what = 'tx entry'): Buffer {
  if (!entry) throw new VerificationError(`${what} is missing`);
  return entryDigest(version, { storedKey: entry.key, hValue: entry.hValue, metadata: entry.metadata }, what);
}
