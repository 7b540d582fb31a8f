// A time range of `verify --all --since/--until` mapped to transactions (decisions #24): found
// by a binary search over the commit times the server claims, then checked transaction by
// transaction against the commit times the chain walk verified.
import { VerificationError } from '../store/proofs/index.js';

/**
 * The first tx id in lo..hi whose commit time is at or after `time` (hi + 1 if none), by binary
 * search over the times the server claims (immudb stamps transactions in order, and searches its
 * own history the same way: FirstTxSince).
 */
export async function firstAtOrAfter(timeOf: (id: number) => Promise<number>, lo: number, hi: number, time: number): Promise<number> {
  let left = lo;
  let right = hi + 1;
  while (left < right) {
    const mid = left + Math.floor((right - left) / 2);
    if ((await timeOf(mid)) < time) left = mid + 1;
    else right = mid;
  }
  return left;
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Checks, with a tx's verified commit time, what the search for a time range assumed: the time
 * the server claimed for it, the order of commit times, and which side of the window it is on.
 */
export function checkTime(tx: { id: number; time: number }, claimedTime: number | undefined, prevTime: number | undefined, inWindow: boolean, inRange: boolean): void {
  if (claimedTime !== undefined && claimedTime !== tx.time) {
    throw new VerificationError(`tx ${tx.id}: the commit time the server sent while searching for the time range (${iso(claimedTime)}) is not the one in its verified header (${iso(tx.time)})`);
  }
  if (prevTime !== undefined && tx.time < prevTime) {
    throw new VerificationError(
      `tx ${tx.id} was committed (${iso(tx.time)}) before tx ${tx.id - 1} (${iso(prevTime)}): the server's clock went back, so times cannot be mapped to transactions; verify by --from-tx`,
    );
  }
  if (inWindow !== inRange) {
    throw new VerificationError(
      `tx ${tx.id} (committed ${iso(tx.time)}) is ${inWindow ? '' : 'not '}in the time range, but the search ${inRange ? 'included' : 'left'} it ${inRange ? 'in' : 'out'}: the server's answers while searching do not match its verified history`,
    );
  }
}
