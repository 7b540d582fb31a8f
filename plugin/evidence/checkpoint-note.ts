// Checkpoints: a verified state of an audit log written as a note in the spirit of C2SP
// tlog-checkpoint and signed-note (decisions #28):
//
//   immudb/<server uuid>/<database>          origin
//   <tx id>                                  the size of the log (immudb tx ids run 1..N)
//   <base64 Alh of that tx>                  immudb's accumulated linear hash, not an RFC 6962 root
//   time <RFC 3339>                          extension lines
//   server <uuid>
//   database <name>
//   log <name>
//   immudb-signature <base64 ASN.1 DER ECDSA P-256 signature of immudb's state encoding>
//   <blank line>
//   — <auditor key name> <base64(key ID || Ed25519 signature of the text above)>   (optional)
//
// immudb's signature is not a note signature: it signs immudb's own state encoding
// (u32 len(db) ‖ db ‖ u64 tx ‖ Alh), not the note text, so it is an extension line that the
// server's public key checks. The auditor's signature is a C2SP Ed25519 note signature. Pure.
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import type { Signature } from '../store/immudb-types.js';
import { verifyStateSignature } from '../store/proofs/index.js';
import { EvidenceError, fromBase64 } from './json-form.js';

export interface Checkpoint {
  origin: string;
  txId: number;
  alh: Buffer;
  time: string;
  serverUuid: string;
  database: string;
  log: string;
  /** immudb's state signature (DER), when the server signs its states. */
  immudbSignature: Buffer | null;
}

export interface ParsedCheckpoint extends Checkpoint {
  /** The signed text (through the last extension line's newline). */
  text: string;
  signatures: Array<{ name: string; keyId: Buffer; signature: Buffer }>;
}

const NAME = /^[^\s+]+$/;
const SIG_TYPE_ED25519 = 0x01;

export function checkpointOrigin(serverUuid: string, database: string): string {
  return `immudb/${serverUuid}/${database}`;
}

export function checkpointText(c: Checkpoint): string {
  const lines = [c.origin, String(c.txId), c.alh.toString('base64'), `time ${c.time}`, `server ${c.serverUuid}`, `database ${c.database}`, `log ${c.log}`];
  if (c.immudbSignature) lines.push(`immudb-signature ${c.immudbSignature.toString('base64')}`);
  return lines.join('\n') + '\n';
}

/** C2SP key ID of an Ed25519 key: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ 32-byte key)[:4]. */
export function ed25519KeyId(name: string, publicKey: KeyObject): Buffer {
  const raw = rawEd25519(publicKey);
  return createHash('sha256').update(name).update(Buffer.from([0x0a, SIG_TYPE_ED25519])).update(raw).digest().subarray(0, 4);
}

function rawEd25519(publicKey: KeyObject): Buffer {
  // The SPKI of an Ed25519 key is a fixed 12-byte header and the 32-byte key.
  return publicKey.export({ type: 'spki', format: 'der' }).subarray(-32);
}

/** An Ed25519 key from PEM; `file` and `wrongType` word the errors. */
function readEd25519(pem: string, file: string, kind: 'private' | 'public', wrongType: string): KeyObject {
  let key: KeyObject;
  try {
    key = kind === 'private' ? createPrivateKey(pem) : createPublicKey(pem);
  } catch (e) {
    throw new Error(`${file} is not a PEM ${kind} key: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${file} is a ${key.asymmetricKeyType} key${wrongType}`);
  return key;
}

export function readEd25519PrivateKey(pem: string, file: string): KeyObject {
  return readEd25519(pem, file, 'private', '; the checkpoint signing key must be Ed25519 (openssl genpkey -algorithm ed25519)');
}

export function readEd25519PublicKey(pem: string, file: string): KeyObject {
  return readEd25519(pem, file, 'public', ", expected the auditor's Ed25519 public key");
}

/** A signed-note Ed25519 signature line of `text`: `— name base64(key ID ‖ signature)`. */
export function noteSignatureLine(text: string, name: string, key: KeyObject): string {
  if (!NAME.test(name)) throw new Error(`signer name ${JSON.stringify(name)} must not be empty or contain spaces or '+'`);
  const sig = sign(null, Buffer.from(text), key);
  return `— ${name} ${Buffer.concat([ed25519KeyId(name, createPublicKey(key)), sig]).toString('base64')}\n`;
}

/** The note: its text and, with a key, one Ed25519 signature line. */
export function signCheckpoint(c: Checkpoint, signer?: { name: string; key: KeyObject }): string {
  const text = checkpointText(c);
  return signer ? `${text}\n${noteSignatureLine(text, signer.name, signer.key)}` : text;
}

function field(ext: Map<string, string>, name: string, part: string): string {
  const v = ext.get(name);
  if (v === undefined) throw new EvidenceError(part, `has no "${name}" line`);
  return v;
}

/** Parses a checkpoint note; `part` names it in errors (a file, or `checkpoint.note` in a bundle). */
export function parseCheckpoint(note: string, part = 'checkpoint'): ParsedCheckpoint {
  // Signed notes are UTF-8 without control characters other than newline.
  if (/[\u0000-\u0009\u000b-\u001f]/.test(note)) throw new EvidenceError(part, 'holds control characters');
  const split = note.indexOf('\n\n');
  const text = split === -1 ? note : note.slice(0, split + 1);
  if (!text.endsWith('\n')) throw new EvidenceError(part, 'does not end in a newline');
  const lines = text.slice(0, -1).split('\n');
  const [origin, size, hash, ...rest] = lines;
  if (!origin || !NAME.test(origin)) throw new EvidenceError(`${part} origin line`, 'is missing or holds spaces');
  if (!size || !/^(0|[1-9][0-9]*)$/.test(size) || !Number.isSafeInteger(Number(size)) || Number(size) < 1) throw new EvidenceError(`${part} tx line`, `${JSON.stringify(size ?? '')} is not a tx id`);
  const alh = fromBase64(hash, `${part} Alh line`);
  if (alh.length !== 32) throw new EvidenceError(`${part} Alh line`, `is ${alh.length} bytes, expected 32`);
  const ext = new Map<string, string>();
  for (const l of rest) {
    const m = /^([a-z][a-z0-9-]*) (\S.*)$/.exec(l);
    if (!m) throw new EvidenceError(`${part} extension line`, `${JSON.stringify(l)} is not "name value"`);
    if (ext.has(m[1]!)) throw new EvidenceError(`${part} extension line`, `"${m[1]}" appears twice`);
    ext.set(m[1]!, m[2]!);
  }
  const signatures: ParsedCheckpoint['signatures'] = [];
  if (split !== -1) {
    const sigText = note.slice(split + 2);
    if (!sigText.endsWith('\n')) throw new EvidenceError(`${part} signatures`, 'do not end in a newline');
    for (const l of sigText.slice(0, -1).split('\n')) {
      const m = /^— (\S+) (\S+)$/.exec(l);
      if (!m) throw new EvidenceError(`${part} signature line`, `${JSON.stringify(l)} is not "— name signature"`);
      const b = fromBase64(m[2], `${part} signature of ${m[1]}`);
      if (b.length < 5) throw new EvidenceError(`${part} signature of ${m[1]}`, 'is too short');
      signatures.push({ name: m[1]!, keyId: b.subarray(0, 4), signature: b.subarray(4) });
    }
  }
  const database = field(ext, 'database', part);
  const serverUuid = field(ext, 'server', part);
  if (origin !== checkpointOrigin(serverUuid, database)) throw new EvidenceError(`${part} origin line`, `${origin} is not immudb/<server>/<database> of its own lines`);
  const sig = ext.get('immudb-signature');
  const time = field(ext, 'time', part);
  if (Number.isNaN(Date.parse(time))) throw new EvidenceError(`${part} time line`, `${JSON.stringify(time)} is not a time`);
  return {
    origin, txId: Number(size), alh, time, serverUuid, database, log: field(ext, 'log', part),
    immudbSignature: sig === undefined ? null : fromBase64(sig, `${part} immudb-signature line`),
    text, signatures,
  };
}

/**
 * What a check of a note's signatures established. 'valid': checked under the key given;
 * 'unchecked': the note carries the signature but no key to check it was given (never to be
 * reported as checked: the caller says so loudly, decisions #45); 'absent': no such signature
 * and no key that asked for one.
 */
export interface CheckpointSignatures {
  immudb: 'valid' | 'unchecked' | 'absent';
  auditor: 'valid' | 'unchecked' | 'absent';
  /** Names of the signature lines no given key checked (other cosigners when one was). */
  unchecked: string[];
}

/**
 * Checks the note's signatures: immudb's (when `serverKey` is given it must be present and
 * valid) and the auditor's (when `auditor` is given, a valid signature line of that name and key
 * must be there). Unknown signature lines are not failures, as C2SP says, but are reported.
 */
export function verifyCheckpointSignatures(c: ParsedCheckpoint, keys: { serverKey?: KeyObject; auditor?: { name: string; key: KeyObject } }, part = 'checkpoint'): CheckpointSignatures {
  let immudb: CheckpointSignatures['immudb'] = c.immudbSignature ? 'unchecked' : 'absent';
  if (keys.serverKey) {
    const signature: Signature | null = c.immudbSignature ? { signature: c.immudbSignature, publicKey: Buffer.alloc(0) } : null;
    try {
      verifyStateSignature(signature, keys.serverKey, c.database, c.txId, c.alh);
    } catch (e) {
      throw new EvidenceError(`${part} immudb-signature line`, (e as Error).message);
    }
    immudb = 'valid';
  }
  if (!keys.auditor) {
    return { immudb, auditor: c.signatures.length ? 'unchecked' : 'absent', unchecked: c.signatures.map((s) => s.name) };
  }
  const { name, key } = keys.auditor;
  const id = ed25519KeyId(name, key);
  const named = c.signatures.filter((s) => s.name === name);
  const line = named.find((s) => s.keyId.equals(id));
  if (!line) {
    const why = named.length ? `is by another key (key ID ${named[0]!.keyId.toString('hex')}, the given key's is ${id.toString('hex')})` : 'is missing (no signature line of that name)';
    throw new EvidenceError(`${part} signature of ${name}`, why);
  }
  if (!verify(null, Buffer.from(c.text), key, line.signature)) throw new EvidenceError(`${part} signature of ${name}`, 'does not verify with the given auditor key');
  return { immudb, auditor: 'valid', unchecked: c.signatures.filter((s) => s !== line).map((s) => s.name) };
}

/**
 * The warning for signatures a checkpoint carries that were not checked, naming the option that
 * would check each (`immudbKeyOption`: --server-public-key, or verify-bundle's --public-key);
 * undefined when there are none. Cosigners beyond a checked auditor are not warned about.
 */
export function uncheckedSignatures(s: CheckpointSignatures, immudbKeyOption: string): string | undefined {
  const parts: string[] = [];
  if (s.immudb === 'unchecked') parts.push(`immudb's signature was NOT checked (give ${immudbKeyOption})`);
  if (s.auditor === 'unchecked') parts.push(`the signature${s.unchecked.length > 1 ? 's' : ''} of ${s.unchecked.join(', ')} ${s.unchecked.length > 1 ? 'were' : 'was'} NOT checked (give --auditor-public-key)`);
  return parts.length ? parts.join('; ') : undefined;
}

/** One line of what the signatures proved, for the commands' text output. */
export function signaturesSummary(s: CheckpointSignatures, immudbKeyOption: string, auditorName: string): string {
  const valid: string[] = [];
  const not: string[] = [];
  if (s.immudb === 'valid') valid.push(`immudb's valid under ${immudbKeyOption}`);
  if (s.immudb === 'unchecked') not.push(`immudb's (give ${immudbKeyOption})`);
  if (s.auditor === 'valid') valid.push(`${auditorName}'s valid under --auditor-public-key`);
  if (s.auditor === 'unchecked') not.push(...s.unchecked.map((n) => `${n}'s (give --auditor-public-key)`));
  return [valid.join('; '), not.length ? `NOT checked: ${not.join(', ')}` : ''].filter(Boolean).join('; ') || 'none (the note carries no signature)';
}
