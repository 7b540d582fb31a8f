// The JavaScript SHA-256 of short messages (plugin/store/proofs/sha256-small.ts) and the hashing
// built on it (leaves, inner nodes, entry digests, the entry tree over one buffer), each checked
// differentially against Node's crypto.hash and straightforward reference forms of immudb's
// layouts (Buffer.concat of the parts), on every length and on random contents.
import test from 'ava';
import fc from 'fast-check';
import { hash } from 'node:crypto';
import { sha256Small, SMALL_MAX, smallInput } from '../../plugin/store/proofs/sha256-small.js';
import { HASH_SIZE, leafHash, leafHashAt, nodeHash, nodeHashAt } from '../../plugin/store/proofs/hashing.js';
import { digestAt, digestOf } from '../../plugin/store/proofs/entry-digest.js';
import { entriesHash, entriesRoot } from '../../plugin/store/proofs/entry-inclusion.js';

const sha = (...parts: Uint8Array[]) => hash('sha256', Buffer.concat(parts), 'buffer');
const u16 = (n: number) => Buffer.from([n >>> 8, n & 0xff]);

/** The entry tree as immudb builds it: leaves sha256(0x00 ‖ d), nodes sha256(0x01 ‖ l ‖ r), an odd last node moves up. */
function referenceTree(digests: Buffer[]): Buffer {
  let level: Buffer[] = digests.map((d) => sha(Buffer.from([0]), d));
  while (level.length > 1) {
    const next: Buffer[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) next.push(sha(Buffer.from([1]), level[i]!, level[i + 1]!));
    if (level.length % 2 === 1) next.push(level[level.length - 1]!);
    level = next;
  }
  return level[0]!;
}

test('sha256Small equals crypto.hash on every length up to SMALL_MAX, at any offset of the output', (t) => {
  for (let len = 0; len <= SMALL_MAX; len++) {
    const m = Buffer.alloc(len);
    for (let i = 0; i < len; i++) m[i] = (i * 131 + len * 7) & 0xff;
    smallInput.set(m);
    const out = Buffer.alloc(HASH_SIZE + 5, 0xee);
    sha256Small(len, out, 3);
    t.deepEqual(out.subarray(3, 3 + HASH_SIZE), hash('sha256', m, 'buffer'), `length ${len}`);
    t.is(out[2], 0xee, 'nothing written before the offset');
    t.is(out[3 + HASH_SIZE], 0xee, 'nothing written after the hash');
  }
  t.throws(() => sha256Small(SMALL_MAX + 1, Buffer.alloc(32), 0), { instanceOf: RangeError });
});

test('sha256Small equals crypto.hash on random messages, also written over its own input', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: SMALL_MAX }), (m) => {
      smallInput.set(m);
      sha256Small(m.length, smallInput, 0);
      return Buffer.from(smallInput.subarray(0, HASH_SIZE)).equals(hash('sha256', m, 'buffer'));
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('leaf and node hashes, in place or not, equal sha256 of the prefixed inputs', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (l, r) => {
      const L = Buffer.from(l);
      const R = Buffer.from(r);
      const leaf = sha(Buffer.from([0]), L);
      const node = sha(Buffer.from([1]), L, R);
      if (!leafHash(L).equals(leaf) || !nodeHash(L, R).equals(node)) return false;
      // Over their own inputs, as the entry tree does.
      const buf = Buffer.concat([L, R]);
      leafHashAt(buf, 0, buf, 0);
      if (!buf.subarray(0, 32).equals(leaf)) return false;
      const buf2 = Buffer.concat([L, R]);
      nodeHashAt(buf2, 0, buf2, 32, buf2, 0);
      return buf2.subarray(0, 32).equals(node);
    }),
    { numRuns: 500 },
  );
  // Inputs that are not 32 bytes long take crypto.hash.
  t.deepEqual(leafHash(Buffer.from('ab')), sha(Buffer.from([0]), Buffer.from('ab')));
  t.deepEqual(nodeHash(Buffer.from('a'), Buffer.alloc(40, 3)), sha(Buffer.from([1]), Buffer.from('a'), Buffer.alloc(40, 3)));
});

test('entry digests equal the v0 and v1 layouts, for short keys and keys past SMALL_MAX', (t) => {
  const hValue = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b));
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 400 }), hValue, fc.constantFrom(0, 1, 9, 10), (k, hv, mdLen) => {
      const key = Buffer.from(k);
      const md = Buffer.alloc(mdLen, 7);
      const v1 = sha(u16(md.length), md, u16(key.length), key, hv);
      const out = Buffer.alloc(70, 0xee);
      digestAt(1, key, hv, md, out, 19, 'entry');
      if (!digestOf(1, key, hv, md, 'entry').equals(v1) || !out.subarray(19, 51).equals(v1) || out[18] !== 0xee || out[51] !== 0xee) return false;
      return digestOf(0, key, hv, Buffer.alloc(0), 'entry').equals(sha(key, hv));
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

test('the entry tree over one buffer equals the reference tree for every width up to 70 and random digests', (t) => {
  for (let n = 1; n <= 70; n++) {
    const digests = Array.from({ length: n }, (_, i) => sha(Buffer.from(`digest ${n}/${i}`)));
    const want = referenceTree(digests);
    t.deepEqual(entriesHash(digests), want, `${n} entries`);
    const leaves = Buffer.concat(digests.map((d) => sha(Buffer.from([0]), d)));
    t.deepEqual(entriesRoot(leaves, n), want, `${n} leaves`);
  }
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { minLength: 1, maxLength: 300 }), (ds) => {
      const digests = ds.map((d) => Buffer.from(d));
      return entriesHash(digests).equals(referenceTree(digests));
    }),
    { numRuns: 200 },
  );
});
