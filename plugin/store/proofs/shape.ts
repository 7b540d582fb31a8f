// Checks on the shape of decoded messages: presence, byte lengths and integer ranges. Every
// number that reaches the hashing code has been validated here, so a malformed message fails
// with a VerificationError naming the field instead of hashing a silently truncated value.
import { VerificationError } from './errors.js';
import { HASH_SIZE } from './hashing.js';

const UINT64_MAX = (1n << 64n) - 1n;
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

export function requireBytes(value: unknown, what: string): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new VerificationError(`${what} is missing or not bytes`);
}

export function requireHash(value: unknown, what: string): Buffer {
  const b = requireBytes(value, what);
  if (b.length !== HASH_SIZE) throw new VerificationError(`${what} is ${b.length} bytes, expected a ${HASH_SIZE}-byte sha256 digest`);
  return b;
}

export function requireHashList(value: unknown, what: string): Buffer[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) throw new VerificationError(`${what} is not a list of hashes`);
  return value.map((v, i) => requireHash(v, `${what}[${i}]`));
}

function parseInteger(value: unknown, what: string, signed: boolean): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new VerificationError(`${what} (${value}) is not an exact integer`);
    return BigInt(value);
  }
  if (typeof value === 'string' && (signed ? /^-?[0-9]+$/ : /^[0-9]+$/).test(value)) return BigInt(value);
  throw new VerificationError(`${what} is missing or not ${signed ? 'an' : 'an unsigned'} integer`);
}

/** A uint64 field (decimal string on the wire). */
export function parseUint64(value: unknown, what: string): bigint {
  const n = parseInteger(value, what, false);
  if (n < 0n || n > UINT64_MAX) throw new VerificationError(`${what} (${n}) is out of the uint64 range`);
  return n;
}

/** An int64 field (decimal string on the wire). */
export function parseInt64(value: unknown, what: string): bigint {
  const n = parseInteger(value, what, true);
  if (n < INT64_MIN || n > INT64_MAX) throw new VerificationError(`${what} (${n}) is out of the int64 range`);
  return n;
}

/** A tx id: a uint64 that must also be a safe JavaScript integer, at least `min`. */
export function parseTxId(value: unknown, what: string, min = 1): number {
  const n = parseUint64(value, what);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new VerificationError(`${what} (${n}) is beyond the safe integer range`);
  const id = Number(n);
  if (id < min) throw new VerificationError(`${what} (${id}) must be at least ${min}`);
  return id;
}

/** A small integer field (int32 on the wire) within [min, max]. */
export function requireInt(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new VerificationError(`${what} is missing or not an integer`);
  if (value < min || value > max) throw new VerificationError(`${what} (${value}) is out of range [${min}, ${max}]`);
  return value;
}

export function requirePresent<T>(value: T | null | undefined, what: string): T {
  if (value === null || value === undefined) throw new VerificationError(`${what} is missing`);
  return value;
}
