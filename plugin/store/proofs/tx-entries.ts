// Checks of the entries a Tx message lists against its header's eH. Each entry is hashed once
// (its value, its digest, its leaf of the entry tree); texts for errors are only built when a
// check fails.
import type { KVMetadata, Tx, TxEntry } from '../immudb-types.js';
import { digestAt, digestOf, PLAIN_KEY_PREFIX, PLAIN_VALUE_PREFIX, STORED_PLAIN_VALUE_PREFIX } from './entry-digest.js';
import { entriesHash, entriesRoot } from './entry-inclusion.js';
import { VerificationError } from './errors.js';
import { HASH_SIZE, leafHashAt, sha256 } from './hashing.js';
import { kvMetadataBytes } from './metadata.js';
import { parseTxHeader, type ParsedTxHeader } from './tx-header.js';
import { requireBytes, requireHash, requirePresent } from './shape.js';

/** A key-value pair as sent in a KeyValue (no store prefixes). */
export interface ExpectedEntry {
  key: Buffer;
  value: Buffer;
  metadata?: KVMetadata | null;
}

const EMPTY = Buffer.alloc(0);

function refuseResolved(tx: Tx, what: string): void {
  if ((tx.kvEntries?.length ?? 0) > 0 || (tx.zEntries?.length ?? 0) > 0) {
    throw new VerificationError(`${what}: resolved kvEntries/zEntries cannot be verified; request raw or digest entries`);
  }
}

// Fast paths of requireBytes/requireHash: the field's name is only spelled out when it is wrong.
const bytes = (v: unknown): Buffer | undefined => (Buffer.isBuffer(v) ? v : undefined);
const hash32 = (v: unknown): Buffer | undefined => (Buffer.isBuffer(v) && v.length === HASH_SIZE ? v : undefined);

/** The listed entry `i`, present (a null in a tampered answer is refused, not a TypeError). */
function entryAt(entries: readonly TxEntry[], i: number, what: string): TxEntry {
  const e = entries[i];
  if (!e) throw new VerificationError(`${what} entry ${i} is missing`);
  return e;
}

/**
 * Checks the entries listed in `tx` (if any) against the header: all of them are listed, each
 * value present hashes to its hValue, and their digests rebuild eH. Resolved kvEntries/zEntries
 * cannot be checked and are refused. Returns whether entries were listed.
 */
export function verifyListedEntries(tx: Tx, header: ParsedTxHeader, what = `tx ${header.id}`): boolean {
  refuseResolved(tx, what);
  const entries = tx.entries ?? [];
  if (entries.length === 0) return false;
  if (entries.length !== header.nentries) {
    throw new VerificationError(`${what} lists ${entries.length} of its ${header.nentries} entries; a partial list cannot be checked against eH`);
  }
  // The entries' leaf hashes, one after another; the tree is then built over them in place.
  const leaves = Buffer.allocUnsafe(entries.length * HASH_SIZE);
  for (let i = 0; i < entries.length; i++) {
    const e = entryAt(entries, i, what);
    const value = e.value === null || e.value === undefined ? EMPTY : bytes(e.value) ?? requireBytes(e.value, `${what} entry ${i}.value`);
    const hValue = hash32(e.hValue) ?? requireHash(e.hValue, `${what} entry ${i}.hValue`);
    if (value.length > 0) {
      if (!sha256(value).equals(hValue)) throw new VerificationError(`${what} entry ${i}: value does not hash to hValue`);
      if (e.vLen !== value.length) throw new VerificationError(`${what} entry ${i}: vLen ${e.vLen} does not match the ${value.length}-byte value`);
    }
    const key = bytes(e.key) ?? requireBytes(e.key, `${what} entry ${i}.key`);
    const at = i * HASH_SIZE;
    digestAt(header.version, key, hValue, e.metadata ? kvMetadataBytes(e.metadata, `${what} entry ${i}.metadata`) : EMPTY, leaves, at, () => `${what} entry ${i}`);
    leafHashAt(leaves, at, leaves, at);
  }
  if (!entriesRoot(leaves, entries.length).equals(header.eH)) throw new VerificationError(`${what}: entries do not hash to the header's eH`);
  return true;
}

/**
 * Checks that `tx` holds exactly the `expected` key-value pairs (as sent, without store
 * prefixes): same count, every key present once with sha256 of its value and its metadata, and
 * the entries rebuild the header's eH. Resolved kvEntries/zEntries are refused.
 */
export function verifyTxEntries(tx: Tx | null | undefined, expected: readonly ExpectedEntry[]): ParsedTxHeader {
  const t = requirePresent(tx, 'tx');
  const header = parseTxHeader(t.header);
  const what = `tx ${header.id}`;
  refuseResolved(t, what);
  const entries = t.entries ?? [];
  if (expected.length === 0) throw new VerificationError(`${what}: no expected entries given`);
  if (header.nentries !== expected.length) {
    throw new VerificationError(`${what} has ${header.nentries} entries in its header, expected ${expected.length}`);
  }
  if (entries.length !== expected.length) {
    throw new VerificationError(`${what} lists ${entries.length} entries, expected ${expected.length}`);
  }
  // Keys as latin1 strings: one byte per character, so equal strings are equal keys.
  const wanted = new Map<string, ExpectedEntry>();
  for (const kv of expected) {
    const k = requireBytes(kv.key, 'expected entry key').toString('latin1');
    if (wanted.has(k)) throw new VerificationError(`${what}: expected entries repeat key ${kv.key.toString('hex')}`);
    wanted.set(k, kv);
  }
  const digests: Buffer[] = new Array(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const e = entryAt(entries, i, what);
    const ew = () => `${what} entry ${i}`;
    const key = bytes(e.key) ?? requireBytes(e.key, `${what} entry ${i}.key`);
    const userKey = key.length > 0 && key[0] === PLAIN_KEY_PREFIX ? key.toString('latin1', 1) : undefined;
    const kv = userKey === undefined ? undefined : wanted.get(userKey);
    if (!kv) throw new VerificationError(`${ew()}: key ${key.toString('hex')} is not one of the expected keys (or is listed twice)`);
    wanted.delete(userKey!);
    const userValue = requireBytes(kv.value, 'expected entry value');
    const hValue = hash32(e.hValue) ?? requireHash(e.hValue, `${what} entry ${i}.hValue`);
    // The stored value is the user value behind a one-byte prefix.
    if (!sha256(STORED_PLAIN_VALUE_PREFIX, userValue).equals(hValue)) {
      throw new VerificationError(`${ew()}: hValue is not the hash of the expected value for key ${kv.key.toString('hex')}`);
    }
    if (e.vLen !== userValue.length + 1) throw new VerificationError(`${ew()}: vLen ${e.vLen}, expected ${userValue.length + 1}`);
    const value = e.value === null || e.value === undefined ? EMPTY : bytes(e.value) ?? requireBytes(e.value, `${what} entry ${i}.value`);
    if (value.length > 0 && !(value.length === userValue.length + 1 && value[0] === PLAIN_VALUE_PREFIX && value.subarray(1).equals(userValue))) {
      throw new VerificationError(`${ew()}: value differs from the expected value`);
    }
    const md = e.metadata ? kvMetadataBytes(e.metadata, `${what} entry ${i}.metadata`) : EMPTY;
    if (!md.equals(kvMetadataBytes(kv.metadata, 'expected entry metadata'))) {
      throw new VerificationError(`${ew()}: metadata differs from the expected metadata`);
    }
    digests[i] = digestOf(header.version, key, hValue, md, ew);
  }
  if (!entriesHash(digests).equals(header.eH)) throw new VerificationError(`${what}: entries do not hash to the header's eH`);
  return header;
}
