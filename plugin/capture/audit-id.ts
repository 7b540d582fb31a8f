// Audit entry ids: UUIDv7 (RFC 9562) from the uuid package, with its random bytes drawn from a
// pool filled once per 256 ids. uuid's v7() without options calls crypto.getRandomValues for
// every id (2 µs, 6 % of the audit thread's CPU in the profile); with options it takes the
// random bytes, time and sequence given, so the monotonic rule is kept here, as uuid 14 applies
// it: within one millisecond the 32-bit sequence (seeded from the random bytes each new
// millisecond) increments, and on overflow the time advances by one.
import { randomFillSync } from 'node:crypto';
import { v7 } from 'uuid';

const POOL_IDS = 256;
const pool = new Uint8Array(16 * POOL_IDS);
let next = POOL_IDS;
const state = { msecs: -Infinity, seq: 0 };

export function auditId(now: number = Date.now()): string {
  if (next === POOL_IDS) {
    randomFillSync(pool);
    next = 0;
  }
  const random = pool.subarray(16 * next, 16 * next + 16);
  next++;
  if (now > state.msecs) {
    state.seq = ((random[6]! & 0x7f) << 24) | (random[7]! << 16) | (random[8]! << 8) | random[9]!;
    state.msecs = now;
  } else {
    state.seq = (state.seq + 1) | 0;
    if (state.seq === 0) state.msecs++;
  }
  return v7({ random, msecs: state.msecs, seq: state.seq });
}
