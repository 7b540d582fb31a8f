// Checkpoint notes (pure): the auditor's signature is a C2SP signed-note Ed25519 signature,
// byte-compatible with Go's golang.org/x/mod/sumdb/note (its published PeterNeumann vector), and
// a note's lines are parsed strictly, naming the line that is wrong.
import test from 'ava';
import { createPrivateKey, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import {
  checkpointOrigin, ed25519KeyId, noteSignatureLine, parseCheckpoint, signCheckpoint, verifyCheckpointSignatures, type Checkpoint,
} from '../../plugin/evidence/checkpoint-note.js';
import { fromBase64, fromHex } from '../../plugin/evidence/json-form.js';

// golang.org/x/mod/sumdb/note, note.go's example: verifier key, signer key, text, signature.
const GO_VERIFIER = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const GO_SIGNER = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_SIGNATURE = '— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';

const ed25519Public = (raw: Buffer) => createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]), format: 'der', type: 'spki' });
const ed25519Private = (seed: Buffer) => createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' });

test("the auditor's note signature is Go sumdb/note's, byte for byte", (t) => {
  const pub = ed25519Public(Buffer.from(GO_VERIFIER.split('+')[2]!, 'base64').subarray(1));
  const priv = ed25519Private(Buffer.from(GO_SIGNER.split('+').slice(4).join('+'), 'base64').subarray(1));
  t.is(ed25519KeyId('PeterNeumann', pub).toString('hex'), 'c74f20a3');
  t.is(noteSignatureLine(GO_TEXT, 'PeterNeumann', priv), GO_SIGNATURE);
  const blob = Buffer.from(GO_SIGNATURE.split(' ')[2]!, 'base64');
  t.true(verify(null, Buffer.from(GO_TEXT), pub, blob.subarray(4)));
});

const state: Checkpoint = {
  origin: checkpointOrigin('dc7sc41ksduep08avnjg', 'audit'), txId: 1742, alh: Buffer.alloc(32, 7), time: '2026-12-02T07:18:04.183Z',
  serverUuid: 'dc7sc41ksduep08avnjg', database: 'audit', log: 'audit', immudbSignature: Buffer.from('3045022100', 'hex'),
};

test('a checkpoint round-trips, and its Ed25519 signature checks', (t) => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const note = signCheckpoint(state, { name: 'example.com/auditor', key: privateKey });
  const c = parseCheckpoint(note);
  t.like(c, { origin: 'immudb/dc7sc41ksduep08avnjg/audit', txId: 1742, time: state.time, serverUuid: state.serverUuid, database: 'audit', log: 'audit' });
  t.deepEqual(c.alh, state.alh);
  t.deepEqual(c.immudbSignature, state.immudbSignature);
  // What was checked is reported: immudb's line needs a server key, the auditor's a given key.
  t.deepEqual(verifyCheckpointSignatures(c, { auditor: { name: 'example.com/auditor', key: publicKey } }), { immudb: 'unchecked', auditor: 'valid', unchecked: [] });
  t.deepEqual(verifyCheckpointSignatures(c, {}), { immudb: 'unchecked', auditor: 'unchecked', unchecked: ['example.com/auditor'] });
  t.deepEqual(verifyCheckpointSignatures(parseCheckpoint(signCheckpoint({ ...state, immudbSignature: null })), {}), { immudb: 'absent', auditor: 'absent', unchecked: [] });
  const other = generateKeyPairSync('ed25519').publicKey;
  t.throws(() => verifyCheckpointSignatures(c, { auditor: { name: 'example.com/auditor', key: other } }), { message: /signature of example\.com\/auditor: is by another key \(key ID [0-9a-f]{8}, the given key's is [0-9a-f]{8}\)/ });
  t.throws(() => verifyCheckpointSignatures(c, { auditor: { name: 'example.org/other', key: publicKey } }), { message: /signature of example\.org\/other: is missing/ });
  const edited = parseCheckpoint(note.replace('\nlog audit\n', '\nlog other\n'));
  t.throws(() => verifyCheckpointSignatures(edited, { auditor: { name: 'example.com/auditor', key: publicKey } }), { message: /does not verify with the given auditor key/ });
});

test('malformed notes are refused, naming the line', (t) => {
  const note = signCheckpoint(state);
  const cases: Array<[string, RegExp]> = [
    [note.replace('1742', '01742'), /checkpoint tx line: "01742" is not a tx id/],
    [note.replace(/\n([^\n]+)\ntime/, '\n$1x\ntime'), /checkpoint Alh line: is not (canonical )?base64/],
    [note.replace('immudb/dc7', 'immudb/ec7'), /origin line: immudb\/ec7.* is not immudb\/<server>\/<database> of its own lines/],
    [note.replace('log audit\n', 'log audit\nlog again\n'), /extension line: "log" appears twice/],
    [note.replace('log audit\n', 'log\taudit\n'), /holds control characters/],
    [note.replace('\ndatabase audit', ''), /has no "database" line/],
    [note.replace('time 2026', 'time later'), /time line: "later.*" is not a time/],
    [note.slice(0, -1), /does not end in a newline/],
  ];
  for (const [text, message] of cases) t.throws(() => parseCheckpoint(text), { message }, text);
});

test('bytes have one spelling: upper-case hex and non-canonical base64 are refused', (t) => {
  t.throws(() => fromHex('AB', 'x'), { message: 'x: is not lowercase hex' });
  t.deepEqual(fromBase64('QQ==', 'x'), Buffer.from('A'));
  t.throws(() => fromBase64('QR==', 'x'), { message: 'x: is not canonical base64' });
  t.throws(() => fromBase64('QQ', 'x'), { message: 'x: is not base64' });
});
