// SHA-256 (FIPS 180-4) of short messages in JavaScript, for the many small hashes of a proof
// check: entry digests (~90 bytes), leaves (33) and inner nodes (65) of immudb's Merkle trees.
// Node's one-shot crypto.hash costs ~1 µs per call whatever the size (its fixed cost, not the
// hashing); this costs ~0.3 µs per 64-byte block, allocates nothing and writes the hash where the
// caller wants it (into a tree's level buffer). Longer messages go to crypto.hash (hashing.ts).
// Tested against crypto.hash on every length up to SMALL_MAX and random contents
// (test/unit/sha256-small.test.ts).

/** Longest message hashed here: 3 blocks with padding (beyond, crypto.hash is as fast). */
export const SMALL_MAX = 183;

/** Where callers write the message before calling sha256Small (sized for the padding too). */
export const smallInput = new Uint8Array(192);

const K = Int32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const W = new Int32Array(64);

/**
 * sha256 of smallInput[0..len) (len <= SMALL_MAX) written to out[off..off+32). smallInput is
 * overwritten past len (padding); `out` may be smallInput itself or any other buffer.
 */
export function sha256Small(len: number, out: Uint8Array, off: number): void {
  if (!(len >= 0 && len <= SMALL_MAX)) throw new RangeError(`sha256Small: ${len} bytes (at most ${SMALL_MAX})`);
  const m = smallInput;
  const total = ((len + 9 + 63) >> 6) << 6;
  m[len] = 0x80;
  m.fill(0, len + 1, total - 4);
  const bits = len * 8;
  m[total - 4] = bits >>> 24;
  m[total - 3] = bits >>> 16;
  m[total - 2] = bits >>> 8;
  m[total - 1] = bits;
  let h0 = 0x6a09e667 | 0, h1 = 0xbb67ae85 | 0, h2 = 0x3c6ef372 | 0, h3 = 0xa54ff53a | 0;
  let h4 = 0x510e527f | 0, h5 = 0x9b05688c | 0, h6 = 0x1f83d9ab | 0, h7 = 0x5be0cd19 | 0;
  for (let p = 0; p < total; p += 64) {
    for (let i = 0; i < 16; i++) {
      const q = p + i * 4;
      W[i] = (m[q]! << 24) | (m[q + 1]! << 16) | (m[q + 2]! << 8) | m[q + 3]!;
    }
    for (let i = 16; i < 64; i++) {
      const x = W[i - 15]!;
      const y = W[i - 2]!;
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      W[i] = (W[i - 16]! + s0 + W[i - 7]! + s1) | 0;
    }
    let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i]! + W[i]!) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h0 = (h0 + a) | 0;
    h1 = (h1 + b) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
    h5 = (h5 + f) | 0;
    h6 = (h6 + g) | 0;
    h7 = (h7 + h) | 0;
  }
  put(out, off, h0);
  put(out, off + 4, h1);
  put(out, off + 8, h2);
  put(out, off + 12, h3);
  put(out, off + 16, h4);
  put(out, off + 20, h5);
  put(out, off + 24, h6);
  put(out, off + 28, h7);
}

function put(out: Uint8Array, o: number, x: number): void {
  out[o] = x >>> 24;
  out[o + 1] = x >>> 16;
  out[o + 2] = x >>> 8;
  out[o + 3] = x;
}
