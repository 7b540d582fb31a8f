// Checkpoints and evidence bundles against a real immudb that signs its states: `checkpoint`,
// `verify --all --checkpoint` (a log that only grew passes; a checkpoint the server cannot extend
// exits 3, also on another server showing another history), `bundle` by ids and by search
// filters, and `verify-bundle` with immudb STOPPED: the bundle verifies, and a changed byte in
// any entry, header, proof, signature or checkpoint fails naming the part (every hash byte,
// numbers, values and signatures, in process; a sample as the CLI).
import test from 'ava';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { v7 as uuidv7 } from 'uuid';
import { startImmudb, type ImmudbServer } from '../../scripts/lib/immudb-server.js';
import { buildAuditEntry } from '../../plugin/capture/build-entry.js';
import { encodeEntry } from '../../plugin/capture/encode.js';
import type { AuditEntry } from '../../plugin/capture/audit-entry.js';
import type { KongSerializedLog } from '../../plugin/capture/kong-log.js';
import { AuditWriter } from '../../plugin/store/audit-writer.js';
import { createLogger } from '../../plugin/log.js';
import { generateFixtures } from '../fixtures/serialized-logs.js';
import { cliTarget, runCli } from '../helpers/cli.js';
import { signingKeyPair } from '../helpers/signing-keys.js';
import { parseBundle, verifyBundle } from '../../plugin/evidence/bundle-verify.js';
import { EvidenceError } from '../../plugin/evidence/json-form.js';

const DB = 'evidence';
const PREFIX = 'e';
const dir = mkdtempSync(join(tmpdir(), 'kia-evidence-'));

const ecKeys = (name: string) => signingKeyPair(dir, name);
const server = ecKeys('server');
const other = ecKeys('other');
const ed25519Keys = (name: string) => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const priv = join(dir, `${name}.key`);
  const pub = join(dir, `${name}.pub`);
  writeFileSync(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  return { priv, pub };
};
const auditorKey = ed25519Keys('auditor');
const otherAuditor = ed25519Keys('other-auditor');

let immudb: ImmudbServer;
let writer: AuditWriter;
let target: string[];
const written: AuditEntry[] = [];
const env = () => ({ IMMUDB_PASSWORD: immudb.password });

function build(count: number, seed: number): AuditEntry[] {
  return generateFixtures(count, { seed }).map((f) => {
    const log = JSON.parse(f.json) as KongSerializedLog;
    return buildAuditEntry(log, { id: uuidv7(), now: Date.now(), nodeId: 'node-a', hostname: 'kong-1' }, []);
  });
}
async function write(entries: AuditEntry[]) {
  for (let i = 0; i < entries.length; i += 6) await writer.write(entries.slice(i, i + 6).map((e) => encodeEntry(PREFIX, e)));
  written.push(...entries);
}
const cli = (args: string[]) => runCli([...target, ...args], env());

test.before(async () => {
  immudb = await startImmudb({ args: ['--signingKey', server.priv] });
  writer = new AuditWriter({
    connection: { host: immudb.host, port: immudb.port, username: immudb.username, password: immudb.password, database: DB, createDatabase: true },
    stateDir: join(dir, 'writer'), logger: createLogger('test'),
  });
  await write(build(30, 11));
  target = [...cliTarget(immudb, DB, PREFIX, join(dir, 'auditor')), '--server-public-key', server.pub];
});
test.after.always(async () => {
  await writer?.close();
  await immudb?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test.serial('checkpoint, then verify --all --checkpoint: the log only grew', async (t) => {
  const file = join(dir, 'cp1.note');
  const r = await cli(['checkpoint', '-o', file, '--signing-key', auditorKey.priv]);
  t.is(r.code, 0, r.stderr);
  const note = readFileSync(file, 'utf8');
  const lines = note.split('\n');
  t.regex(lines[0]!, /^immudb\/[0-9a-v]{20}\/evidence$/);
  t.regex(lines[1]!, /^\d+$/);
  t.is(Buffer.from(lines[2]!, 'base64').length, 32);
  t.regex(note, /\ntime \d{4}-.*Z\nserver [0-9a-v]{20}\ndatabase evidence\nlog evidence\nimmudb-signature [A-Za-z0-9+/=]+\n\n— kong-immudb-audit\/auditor [A-Za-z0-9+/=]+\n$/);
  await write(build(6, 12));
  const v = await cli(['verify', '--all', '--checkpoint', file]);
  t.is(v.code, 0, v.stderr);
  t.regex(v.stdout, new RegExp(`checkpoint ${file}: the log only grew since \\(tx ${lines[1]}, taken .*, is extended by tx \\d+\\)`));
  // Without --signing-key: no signature line, immudb's signature only.
  const plain = await cli(['checkpoint']);
  t.is(plain.code, 0, plain.stderr);
  t.notRegex(plain.stdout, /\n\n—/);
  t.regex(plain.stderr, /^checkpoint: tx \d+ of database evidence on server .*, signed by immudb\n$/);
  const json = await cli(['--json', 'checkpoint']);
  t.is(json.code, 0, json.stderr);
  t.like(JSON.parse(json.stdout), { file: null, database: 'evidence', immudb_signed: true, auditor_signed: false });
});

test.serial('verify --all --checkpoint exits 3 for a checkpoint the server cannot extend', async (t) => {
  const file = join(dir, 'cp2.note');
  t.is((await cli(['checkpoint', '-o', file])).code, 0);
  const note = readFileSync(file, 'utf8');
  const [origin, tx, alh, ...rest] = note.split('\n');
  // Another history: the same tx with another Alh (the immudb signature no longer matches either).
  const alhBytes = Buffer.from(alh!, 'base64');
  alhBytes[5]! ^= 1;
  const forked = join(dir, 'forked.note');
  writeFileSync(forked, [origin, tx, alhBytes.toString('base64'), ...rest].join('\n'));
  const unsigned = runCli([...cliTarget(immudb, DB, PREFIX, join(dir, 'auditor')), 'verify', '--all', '--checkpoint', forked], env());
  const u = await unsigned;
  t.is(u.code, 3, u.stdout);
  t.regex(u.stderr, /VERIFICATION FAILED: the log does not extend the checkpoint \(tx \d+, taken .* from server .*\): dual proof/);
  const signed = await cli(['verify', '--all', '--checkpoint', forked]);
  t.is(signed.code, 3);
  t.regex(signed.stderr, /VERIFICATION FAILED: checkpoint .*forked\.note immudb-signature line: state of tx \d+ of database evidence is not signed by the configured server key/);
  // A checkpoint ahead of the server: its history was rolled back (or this is a lagging replica).
  const ahead = join(dir, 'ahead.note');
  writeFileSync(ahead, [origin, String(Number(tx) + 1000), alh, ...rest.filter((l) => !l.startsWith('immudb-signature'))].join('\n'));
  const a = await runCli([...cliTarget(immudb, DB, PREFIX, join(dir, 'auditor')), 'verify', '--all', '--checkpoint', ahead], env());
  t.is(a.code, 3);
  t.regex(a.stderr, /is at tx \d+, before the checkpoint's tx \d+ .*rolled back or replaced, or it is a lagging replica/);
  // Usage: --checkpoint needs --all; a damaged note is named.
  t.is((await cli(['verify', written[0]!.id, '--checkpoint', file])).code, 2);
  writeFileSync(join(dir, 'bad.note'), 'immudb/x/evidence\nseven\n');
  const bad = await cli(['verify', '--all', '--checkpoint', join(dir, 'bad.note')]);
  t.is(bad.code, 3);
  t.regex(bad.stderr, /checkpoint .*bad\.note tx line: "seven" is not a tx id/);
});

test.serial("verify --all --checkpoint checks the auditor's signature with --auditor-public-key, and says when it could not", async (t) => {
  const file = join(dir, 'cp-signed.note');
  t.is((await cli(['checkpoint', '-o', file, '--signing-key', auditorKey.priv])).code, 0);
  const note = readFileSync(file, 'utf8');
  // --from-tx 1: each run has a range to verify (the walk alone would find nothing new).
  const ok = await cli(['verify', '--all', '--from-tx', '1', '--checkpoint', file, '--auditor-public-key', auditorKey.pub]);
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, /checkpoint .*: the log only grew since .*\n  checkpoint signatures: immudb's valid under --server-public-key; kong-immudb-audit\/auditor's valid under --auditor-public-key\n/);
  t.notRegex(ok.stderr, /NOT checked/);
  // The note's text changed where immudb's signature does not reach (the time line): only the
  // auditor's signature catches it, and it must, once the auditor's key is given.
  const edited = join(dir, 'cp-edited.note');
  writeFileSync(edited, note.replace(/\ntime \d{4}/, '\ntime 1999'));
  const e = await cli(['verify', '--all', '--checkpoint', edited, '--auditor-public-key', auditorKey.pub]);
  t.is(e.code, 3, e.stdout);
  t.regex(e.stderr, /VERIFICATION FAILED: checkpoint .*cp-edited\.note signature of kong-immudb-audit\/auditor: does not verify with the given auditor key/);
  const wrong = await cli(['verify', '--all', '--checkpoint', file, '--auditor-public-key', otherAuditor.pub]);
  t.is(wrong.code, 3, wrong.stdout);
  t.regex(wrong.stderr, /VERIFICATION FAILED: checkpoint .*cp-signed\.note signature of kong-immudb-audit\/auditor: is by another key \(key ID [0-9a-f]{8}, the given key's is [0-9a-f]{8}\)/);
  const unsignedFile = join(dir, 'cp-unsigned.note');
  t.is((await cli(['checkpoint', '-o', unsignedFile])).code, 0);
  const missing = await cli(['verify', '--all', '--checkpoint', unsignedFile, '--auditor-public-key', auditorKey.pub]);
  t.is(missing.code, 3, missing.stdout);
  t.regex(missing.stderr, /VERIFICATION FAILED: checkpoint .*cp-unsigned\.note signature of kong-immudb-audit\/auditor: is missing/);
  // No auditor key: the signature line is not taken as checked, loudly, and in --json.
  const unchecked = await cli(['--json', 'verify', '--all', '--from-tx', '1', '--checkpoint', edited]);
  t.is(unchecked.code, 0, unchecked.stderr);
  t.regex(unchecked.stderr, /WARNING: checkpoint .*cp-edited\.note: the signature of kong-immudb-audit\/auditor was NOT checked \(give --auditor-public-key\)/);
  t.like(JSON.parse(unchecked.stdout), { checkpoint_signatures: { immudb: 'valid', auditor: 'unchecked', unchecked_signers: ['kong-immudb-audit/auditor'] } });
  // No server key: immudb's signature line is not checked either, and said so.
  const keyless = await runCli([...cliTarget(immudb, DB, PREFIX, join(dir, 'auditor')), '--json', 'verify', '--all', '--from-tx', '1', '--checkpoint', file, '--auditor-public-key', auditorKey.pub], { ...env(), IMMUDB_AUDIT_SERVER_PUBLIC_KEY: '' });
  t.is(keyless.code, 0, keyless.stderr);
  t.regex(keyless.stderr, /WARNING: checkpoint .*cp-signed\.note: immudb's signature was NOT checked \(give --server-public-key\)/);
  t.like(JSON.parse(keyless.stdout), { checkpoint_signatures: { immudb: 'unchecked', auditor: 'valid', unchecked_signers: [] } });
  // Usage: the auditor key goes with --checkpoint and must be an Ed25519 public key.
  t.is((await cli(['verify', '--all', '--auditor-public-key', auditorKey.pub])).code, 2);
  t.is((await cli(['verify', '--all', '--checkpoint', file, '--auditor-public-key', server.pub])).code, 2);
});

test.serial('a checkpoint from one history fails on a server showing another (a fresh reader of a fork)', async (t) => {
  const file = join(dir, 'cp-history.note');
  t.is((await cli(['checkpoint', '-o', file])).code, 0);
  const tx = Number(readFileSync(file, 'utf8').split('\n')[1]);
  // Another server with the same database name and a longer history of its own: a reader with no
  // trusted state of its own accepts it (first contact); the checkpoint someone kept does not.
  const fork = await startImmudb();
  try {
    const w = new AuditWriter({
      connection: { host: fork.host, port: fork.port, username: fork.username, password: fork.password, database: DB, createDatabase: true },
      stateDir: join(dir, 'fork-writer'), logger: createLogger('test'),
    });
    const entries = build(tx + 2, 21);
    for (const e of entries) await w.write([encodeEntry(PREFIX, e)]);
    await w.close();
    const fresh = [...cliTarget(fork, DB, PREFIX, join(dir, 'fresh-auditor'))];
    const walked = await runCli([...fresh, 'verify', '--all'], { IMMUDB_PASSWORD: fork.password });
    t.is(walked.code, 0, walked.stderr);
    const r = await runCli([...fresh, 'verify', '--all', '--checkpoint', file], { IMMUDB_PASSWORD: fork.password });
    t.is(r.code, 3, r.stdout);
    t.regex(r.stderr, new RegExp(`VERIFICATION FAILED: the log does not extend the checkpoint \\(tx ${tx}, taken .* from server \\S+\\): `));
  } finally {
    await fork.dispose();
  }
});

let bundleFile: string;
let checkpointFile: string;
let denied: AuditEntry[];

test.serial('bundle by ids and by search filters, with a checkpoint', async (t) => {
  checkpointFile = join(dir, 'cp-bundle.note');
  t.is((await cli(['checkpoint', '-o', checkpointFile, '--signing-key', auditorKey.priv])).code, 0);
  await write(build(6, 13));
  denied = written.filter((e) => e.outcome.status === 403);
  t.true(denied.length >= 2, 'the fixtures hold 403s');
  bundleFile = join(dir, 'denied.bundle.json');
  const r = await cli(['bundle', written[0]!.id, '--status', '403', '--checkpoint', checkpointFile, '-o', bundleFile]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, new RegExp(`^bundle: ${denied.length + 1} entries of database evidence proven against tx \\d+ on server .*, state signed by immudb \\(key sha256:[0-9a-f]{64}\\), extends checkpoint tx \\d+; written to ${bundleFile}\\n$`));
  const b = JSON.parse(readFileSync(bundleFile, 'utf8'));
  t.log(`bundle of ${b.entries.length} entries in ${new Set(b.entries.map((e: { tx_header: { id: number } }) => e.tx_header.id)).size} transactions, state tx ${b.state.tx_id}: ${readFileSync(bundleFile).length} bytes`);
  t.deepEqual(b.entries.map((e: { audit_id: string }) => e.audit_id).sort(), [written[0]!.id, ...denied.map((e) => e.id)].sort());
  t.deepEqual(b.entries.find((e: { audit_id: string }) => e.audit_id === denied[0]!.id).entry, JSON.parse(JSON.stringify(denied[0])));
  // The checkpoint's auditor signature: said to be unchecked without the auditor's key, checked with it.
  t.regex(r.stderr, /WARNING: checkpoint .*cp-bundle\.note: the signature of kong-immudb-audit\/auditor was NOT checked \(give --auditor-public-key\)/);
  const one = join(dir, 'one.bundle.json');
  const pinned = await cli(['bundle', written[0]!.id, '--checkpoint', checkpointFile, '--auditor-public-key', auditorKey.pub, '-o', one]);
  t.is(pinned.code, 0, pinned.stderr);
  t.notRegex(pinned.stderr, /NOT checked/);
  const wrong = await cli(['bundle', written[0]!.id, '--checkpoint', checkpointFile, '--auditor-public-key', otherAuditor.pub, '-o', one]);
  t.is(wrong.code, 3, wrong.stderr);
  t.regex(wrong.stderr, /VERIFICATION FAILED: checkpoint .*cp-bundle\.note signature of kong-immudb-audit\/auditor: is by another key/);
  t.is((await cli(['bundle', written[0]!.id, '--auditor-public-key', auditorKey.pub])).code, 2, '--auditor-public-key goes with --checkpoint');
  // Usage and missing entries.
  t.is((await cli(['bundle'])).code, 2);
  t.is((await cli(['bundle', '--status', '403', '--limit', '1'])).code, 2);
  const missing = await cli(['bundle', uuidv7()]);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /not found in immudb database evidence/);
});

test.serial('verify-bundle with immudb stopped: the bundle verifies; changes fail naming the part', async (t) => {
  await immudb.stop();
  const offline = (args: string[]) => runCli(args, {});
  const ok = await offline(['verify-bundle', bundleFile, '--public-key', server.pub, '--checkpoint', checkpointFile, '--auditor-public-key', auditorKey.pub]);
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, /^bundle verified: \d+ entries of database evidence \(server .*\), each included in its transaction, linked to the state tx \d+ \(Alh [0-9a-f]{64}\)\n  state signature: valid, made with the given public key \(sha256:[0-9a-f]{64}\)\n  checkpoint: the state extends the checkpoint of tx \d+ \(taken .*\); its signatures: immudb's valid under --public-key; kong-immudb-audit\/auditor's valid under --auditor-public-key\n/);
  t.regex(ok.stdout, new RegExp(`${denied[0]!.id}  tx \\d+  .* -> 403`));
  const json = await offline(['--json', 'verify-bundle', bundleFile]);
  t.is(json.code, 0);
  t.is(JSON.parse(json.stdout).signature, 'unpinned');

  const original = readFileSync(bundleFile, 'utf8');
  const changed = (edit: (b: any) => void) => {
    const b = JSON.parse(original);
    edit(b);
    const f = join(dir, `changed-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(f, JSON.stringify(b, null, 1));
    return f;
  };
  const flipHex = (h: string, i = 0) => h.slice(0, i) + (h[i] === '0' ? '1' : '0') + h.slice(i + 1);
  const flipB64 = (s: string, i = 0) => {
    const b = Buffer.from(s, 'base64');
    b[i]! ^= 0x01;
    return b.toString('base64');
  };
  const cases: Array<[string, (b: any) => void, RegExp]> = [
    ['entry value', (b) => (b.entries[1].value = flipB64(b.entries[1].value, 40)), /entries\[1\]\.(entry|value)/],
    ['entry key', (b) => (b.entries[0].key = b.entries[0].key.replace(/.$/, 'x')), /entries\[0\]\.key/],
    ['tx header eH', (b) => (b.entries[0].tx_header.eh = flipHex(b.entries[0].tx_header.eh, 7)), /entries\[0\]\.inclusion_proof/],
    ['tx header ts', (b) => (b.entries[0].tx_header.ts += 1), /entries\[0\]\.dual_proof/],
    ['inclusion term', (b) => (b.entries[0].inclusion_proof.terms[0] = flipHex(b.entries[0].inclusion_proof.terms[0], 63)), /entries\[0\]\.inclusion_proof/],
    ['dual proof term', (b) => (b.entries[0].dual_proof.linear_proof.terms[0] = flipHex(b.entries[0].dual_proof.linear_proof.terms[0])), /entries\[0\]\.dual_proof/],
    ['state Alh', (b) => (b.state.alh = flipHex(b.state.alh, 10)), /state\.alh/],
    ['signature', (b) => (b.state.signature = flipB64(b.state.signature, 20)), /state\.signature/],
    ['checkpoint note', (b) => (b.checkpoint.note = b.checkpoint.note.replace(/\ntime (\d)/, '\ntime 1')), /checkpoint\.note/],
    ['checkpoint proof', (b) => (b.checkpoint.dual_proof.target_bl_tx_alh = flipHex(b.checkpoint.dual_proof.target_bl_tx_alh)), /checkpoint\.dual_proof/],
  ];
  for (const [name, edit, part] of cases) {
    const r = await offline(['verify-bundle', changed(edit), '--public-key', server.pub, '--auditor-public-key', auditorKey.pub]);
    t.is(r.code, 3, `${name}: ${r.stdout}`);
    t.regex(r.stderr, new RegExp(`^immudb-audit: VERIFICATION FAILED: ${part.source}`), name);
  }
  const wrongKey = await offline(['verify-bundle', bundleFile, '--public-key', other.pub]);
  t.is(wrongKey.code, 3);
  t.regex(wrongKey.stderr, /VERIFICATION FAILED: state\.public_key_fingerprint: sha256:[0-9a-f]+ is not the given key's sha256:/);
  const otherCheckpoint = await offline(['verify-bundle', bundleFile, '--checkpoint', join(dir, 'cp1.note')]);
  t.is(otherCheckpoint.code, 3);
  t.regex(otherCheckpoint.stderr, /VERIFICATION FAILED: checkpoint\.note: is tx \d+, Alh [0-9a-f]{16}\.\.\., not the given checkpoint/);
  writeFileSync(join(dir, 'broken.json'), original.slice(0, 100));
  const broken = await offline(['verify-bundle', join(dir, 'broken.json')]);
  t.is(broken.code, 3);
  t.regex(broken.stderr, /VERIFICATION FAILED: bundle: is not JSON/);
  t.is((await offline(['verify-bundle'])).code, 2);
});

test.serial("verify-bundle --checkpoint checks the given checkpoint's signatures too, and says which it could not", async (t) => {
  const offline = (args: string[]) => runCli(args, { IMMUDB_AUDIT_SERVER_PUBLIC_KEY: '' });
  const note = readFileSync(checkpointFile, 'utf8');
  // The holder's copy, edited where neither the bundle's proofs nor immudb's signature reach.
  const edited = join(dir, 'cp-bundle-edited.note');
  writeFileSync(edited, note.replace(/\ntime \d{4}/, '\ntime 1999'));
  const e = await offline(['verify-bundle', bundleFile, '--public-key', server.pub, '--checkpoint', edited, '--auditor-public-key', auditorKey.pub]);
  t.is(e.code, 3, e.stdout);
  t.regex(e.stderr, /VERIFICATION FAILED: --checkpoint signature of kong-immudb-audit\/auditor: does not verify with the given auditor key/);
  // The given copy's immudb signature is checked under --public-key.
  const badSig = join(dir, 'cp-bundle-badsig.note');
  writeFileSync(badSig, note.replace(/\nimmudb-signature (\S{30})(\S)/, (_m, a: string, c: string) => `\nimmudb-signature ${a}${c === 'A' ? 'B' : 'A'}`));
  const s = await offline(['verify-bundle', bundleFile, '--public-key', server.pub, '--checkpoint', badSig]);
  t.is(s.code, 3, s.stdout);
  t.regex(s.stderr, /VERIFICATION FAILED: --checkpoint immudb-signature line: /);
  // Without --auditor-public-key: verified, but the signature line is said to be unchecked.
  const unchecked = await offline(['--json', 'verify-bundle', bundleFile, '--public-key', server.pub, '--checkpoint', checkpointFile]);
  t.is(unchecked.code, 0, unchecked.stderr);
  t.regex(unchecked.stderr, /WARNING: checkpoint\.note: the signature of kong-immudb-audit\/auditor was NOT checked \(give --auditor-public-key\)/);
  t.like(JSON.parse(unchecked.stdout).checkpoint_signatures, { 'checkpoint.note': { immudb: 'valid', auditor: 'unchecked' }, '--checkpoint': { immudb: 'valid', auditor: 'unchecked' } });
  const text = await offline(['verify-bundle', bundleFile]);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /checkpoint: the state extends the checkpoint of tx \d+ \(taken .*\); its signatures: NOT checked: immudb's \(give --public-key\), kong-immudb-audit\/auditor's \(give --auditor-public-key\)\n/);
  t.regex(text.stderr, /WARNING: checkpoint\.note: immudb's signature was NOT checked \(give --public-key\); the signature of kong-immudb-audit\/auditor was NOT checked/);
});

/** Every leaf of the bundle that carries proof data, with its path. */
function leaves(v: unknown, path: string, out: Array<[string, unknown]>): Array<[string, unknown]> {
  if (Array.isArray(v)) v.forEach((x, i) => leaves(x, `${path}[${i}]`, out));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) leaves(x, path ? `${path}.${k}` : k, out);
  else out.push([path, v]);
  return out;
}

test.serial('every hash byte, number, value and signature of the bundle is checked (in process)', (t) => {
  const original = readFileSync(bundleFile, 'utf8');
  const opts = { publicKeyPem: readFileSync(server.pub, 'utf8'), checkpointNote: readFileSync(checkpointFile, 'utf8') };
  t.notThrows(() => verifyBundle(parseBundle(original), opts));
  // Not covered by any proof, and documented as such: who made the bundle, when, and the names
  // immudb's signature does not cover.
  const unproven = /^(created_at|created_by|server_uuid|log|state\.public_key_pinned)$/;
  let mutations = 0;
  const started = process.hrtime.bigint();
  const set = (b: any, path: string, value: unknown) => {
    const keys = path.replace(/\[(\d+)\]/g, '.$1').split('.');
    let o = b;
    for (const k of keys.slice(0, -1)) o = o[k];
    o[keys[keys.length - 1]!] = value;
  };
  for (const [path, value] of leaves(JSON.parse(original), '', [])) {
    if (unproven.test(path)) continue;
    const variants: unknown[] = [];
    if (typeof value === 'number') variants.push(value + 1, ...(value > 0 ? [value - 1] : []));
    else if (typeof value === 'boolean') continue;
    else if (typeof value === 'string' && /^[0-9a-f]{64}$/.test(value)) {
      for (let i = 0; i < 32; i++) {
        const b = Buffer.from(value, 'hex');
        b[i]! ^= 1 << (i % 8);
        variants.push(b.toString('hex'));
      }
    } else if (typeof value === 'string' && path.endsWith('.value') || path === 'state.signature' || path === 'state.public_key') {
      const bytes = Buffer.from(value as string, 'base64');
      for (let i = 0; i < bytes.length; i += Math.max(1, Math.floor(bytes.length / 24))) {
        const b = Buffer.from(bytes);
        b[i]! ^= 0x04;
        variants.push(b.toString('base64'));
      }
    } else if (typeof value === 'string') variants.push(value.slice(0, -1) + (value.endsWith('a') ? 'b' : 'a'));
    const top = /^(entries\[\d+\]|state|checkpoint)/.exec(path)?.[1] ?? '';
    for (const v of variants) {
      const b = JSON.parse(original);
      set(b, path, v);
      mutations++;
      const err = t.throws(() => verifyBundle(parseBundle(JSON.stringify(b)), opts), undefined, `${path} = ${JSON.stringify(v)} passed`);
      if (!err) continue;
      t.true(err instanceof EvidenceError, `${path}: ${err.message}`);
      // The part named is the mutated one's entry, the state, or the checkpoint (a changed state
      // header shows in the state's Alh; the schema names the path itself).
      const named = (err as EvidenceError).part;
      const ok = (top && named.startsWith(top)) || named.startsWith(`bundle ${path}`) || (path === 'prefix' && /^entries\[0\]\.key/.test(named)) || (path === 'database' && /^state\.signature/.test(named));
      t.true(ok, `${path} changed, but the error names ${named}: ${err.message}`);
    }
  }
  t.log(`${mutations} single-field changes, each refused naming its part (${Number((process.hrtime.bigint() - started) / 1_000_000n)} ms)`);
  t.true(mutations > 1000);
});

test.serial('a bundle without a signature verifies as consistent only, and fails when a key is required', (t) => {
  const b = JSON.parse(readFileSync(bundleFile, 'utf8'));
  b.state.signature = null;
  const text = JSON.stringify(b);
  // The key alone, without the signature it would check, says nothing.
  t.is(verifyBundle(parseBundle(text)).signature, 'absent');
  const err = t.throws(() => verifyBundle(parseBundle(text), { publicKeyPem: readFileSync(server.pub, 'utf8') }));
  t.is((err as EvidenceError).part, 'state.signature');
  t.regex(err!.message, /is absent, but a public key was given: the state is not signed/);
  // A signature without the key that made it cannot be checked without --public-key.
  const keyless = JSON.parse(readFileSync(bundleFile, 'utf8'));
  keyless.state.public_key = null;
  keyless.state.public_key_fingerprint = null;
  t.throws(() => verifyBundle(parseBundle(JSON.stringify(keyless))), { message: /state\.public_key: is absent: the signature cannot be checked \(give --public-key\)/ });
  t.is(verifyBundle(parseBundle(JSON.stringify(keyless)), { publicKeyPem: readFileSync(server.pub, 'utf8') }).signature, 'pinned');
});
