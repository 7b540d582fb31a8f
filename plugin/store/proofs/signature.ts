// immudb's signed state: with --signingKey the server signs each state it proves to
// (database, tx id, Alh) with ECDSA P-256 over SHA-256 (ASN.1 DER signature). Checked against
// a public key the operator configured, never against the key the server sends along.
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { Signature } from '../immudb-types.js';
import { VerificationError } from './errors.js';

/** The bytes immudb signs: u32 len(db) | db | u64 txId | Alh. */
export function stateBytes(database: string, txId: number, alh: Buffer): Buffer {
  const db = Buffer.from(database);
  const b = Buffer.alloc(4 + db.length + 8 + alh.length);
  b.writeUInt32BE(db.length, 0);
  db.copy(b, 4);
  b.writeBigUInt64BE(BigInt(txId), 4 + db.length);
  alh.copy(b, 12 + db.length);
  return b;
}

/** Parses a PEM public key (SPKI, as `openssl ec -pubout` writes it); throws a clear error. */
export function parseServerPublicKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (e) {
    throw new Error(`server public key is not a PEM public key: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new Error('server public key must be an ECDSA P-256 (prime256v1) key, as immudb --signingKey uses');
  }
  return key;
}

/** Throws unless `signature` is the server's signature of (database, txId, alh) under `key`. */
export function verifyStateSignature(signature: Signature | null | undefined, key: KeyObject, database: string, txId: number, alh: Buffer): void {
  if (!signature || !signature.signature || signature.signature.length === 0) {
    throw new VerificationError(`state of tx ${txId} is not signed, but a server signing key is configured`);
  }
  let ok = false;
  try {
    ok = verify('sha256', stateBytes(database, txId, alh), { key, dsaEncoding: 'der' }, signature.signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new VerificationError(`state of tx ${txId} of database ${database} is not signed by the configured server key`);
}
