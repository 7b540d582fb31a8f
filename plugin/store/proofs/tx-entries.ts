// Checks of the entries a Tx message lists against its header's eH.
import type { KVMetadata, Tx } from '../immudb-types.js';
import { entryDigest, storedKeyOf, storedValueOf, txEntryDigest } from './entry-digest.js';
import { entriesHash } from './entry-inclusion.js';
import { VerificationError } from './errors.js';
import { sha256 } from './hashing.js';
import { kvMetadataBytes } from './metadata.js';
import { parseTxHeader, type ParsedTxHeader } from './tx-header.js';
import { requireBytes, requirePresent } from './shape.js';

/** A key-value pair as sent in a KeyValue (no store prefixes). */
export interface ExpectedEntry {
  key: Buffer;
  value: Buffer;
  metadata?: KVMetadata | null;
}

/**
 * Checks the entries listed in `tx` (if any) against the header: all of them are listed, each
 * value present hashes to its hValue, and their digests rebuild eH. Resolved kvEntries/zEntries
 * cannot be checked and are refused. Returns whether entries were listed.
 */
export function verifyListedEntries(tx: Tx, header: ParsedTxHeader, what = `tx ${header.id}`): boolean {
  if ((tx.kvEntries?.length ?? 0) > 0 || (tx.zEntries?.length ?? 0) > 0) {
    throw new VerificationError(`${what}: resolved kvEntries/zEntries cannot be verified; request raw or digest entries`);
  }
  const entries = tx.entries ?? [];
  if (entries.length === 0) return false;
  if (entries.length !== header.nentries) {
    throw new VerificationError(`${what} lists ${entries.length} of its ${header.nentries} entries; a partial list cannot be checked against eH`);
  }
  const digests = entries.map((e, i) => {
    const ew = `${what} entry ${i}`;
    if (!e) throw new VerificationError(`${ew} is missing`);
    const value = e.value === null || e.value === undefined ? Buffer.alloc(0) : requireBytes(e.value, `${ew}.value`);
    if (value.length > 0) {
      if (!sha256(value).equals(requireBytes(e.hValue, `${ew}.hValue`))) throw new VerificationError(`${ew}: value does not hash to hValue`);
      if (e.vLen !== value.length) throw new VerificationError(`${ew}: vLen ${e.vLen} does not match the ${value.length}-byte value`);
    }
    return txEntryDigest(header.version, e, ew);
  });
  if (!entriesHash(digests).equals(header.eH)) throw new VerificationError(`${what}: entries do not hash to the header's eH`);
  return true;
}

/**
 * Checks that `tx` holds exactly the `expected` key-value pairs (as sent, without store
 * prefixes): same count, every key present once with sha256 of its value and its metadata, and
 * the entries rebuild the header's eH.
 */
export function verifyTxEntries(tx: Tx | null | undefined, expected: ExpectedEntry[]): ParsedTxHeader {
  const t = requirePresent(tx, 'tx');
  const header = parseTxHeader(t.header);
  const what = `tx ${header.id}`;
  const entries = t.entries ?? [];
  if (expected.length === 0) throw new VerificationError(`${what}: no expected entries given`);
  if (header.nentries !== expected.length) {
    throw new VerificationError(`${what} has ${header.nentries} entries in its header, expected ${expected.length}`);
  }
  if (entries.length !== expected.length) {
    throw new VerificationError(`${what} lists ${entries.length} entries, expected ${expected.length}`);
  }
  const wanted = new Map<string, ExpectedEntry>();
  for (const kv of expected) {
    const k = storedKeyOf(requireBytes(kv.key, 'expected entry key')).toString('hex');
    if (wanted.has(k)) throw new VerificationError(`${what}: expected entries repeat key ${kv.key.toString('hex')}`);
    wanted.set(k, kv);
  }
  const digests = entries.map((e, i) => {
    const ew = `${what} entry ${i}`;
    if (!e) throw new VerificationError(`${ew} is missing`);
    const key = requireBytes(e.key, `${ew}.key`);
    const kv = wanted.get(key.toString('hex'));
    if (!kv) throw new VerificationError(`${ew}: key ${key.toString('hex')} is not one of the expected keys (or is listed twice)`);
    wanted.delete(key.toString('hex'));
    const stored = storedValueOf(requireBytes(kv.value, 'expected entry value'));
    if (!sha256(stored).equals(requireBytes(e.hValue, `${ew}.hValue`))) {
      throw new VerificationError(`${ew}: hValue is not the hash of the expected value for key ${kv.key.toString('hex')}`);
    }
    if (e.vLen !== stored.length) throw new VerificationError(`${ew}: vLen ${e.vLen}, expected ${stored.length}`);
    const value = e.value === null || e.value === undefined ? Buffer.alloc(0) : requireBytes(e.value, `${ew}.value`);
    if (value.length > 0 && !value.equals(stored)) throw new VerificationError(`${ew}: value differs from the expected value`);
    if (!kvMetadataBytes(e.metadata, `${ew}.metadata`).equals(kvMetadataBytes(kv.metadata, 'expected entry metadata'))) {
      throw new VerificationError(`${ew}: metadata differs from the expected metadata`);
    }
    return entryDigest(header.version, { storedKey: key, hValue: e.hValue, metadata: e.metadata }, ew);
  });
  if (!entriesHash(digests).equals(header.eH)) throw new VerificationError(`${what}: entries do not hash to the header's eH`);
  return header;
}
