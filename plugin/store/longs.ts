// uint64 values arrive as decimal strings; ids and counts we compute with must be safe integers.
import { VerificationError } from './proofs/index.js';

export function toSafeInt(v: string | number | bigint, what: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new VerificationError(`${what} is not a valid id: ${String(v)}`);
  return n;
}
