// The `verify` command as an auditor uses it, against a real immudb (signing its states): time
// ranges mapped to transactions through verified commit times, no silent passes (exit 1 when
// nothing was verified, saying what was), many ids with bad ones among them, first contact said
// loudly, trust anchors, usage errors (exit 2) and the signature check.
import test from 'ava';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startImmudb, type ImmudbServer } from '../../scripts/lib/immudb-server.js';
import { ImmudbClient } from '../../plugin/store/immudb-client.js';
import { EntryTypeAction } from '../../plugin/store/immudb-types.js';
import { parseTxHeader, txAlh, VerificationError } from '../../plugin/store/proofs/index.js';
import { AuditReader } from '../../plugin/reader/audit-reader.js';
import { cliTarget, runCli } from '../helpers/cli.js';
import { signingKeyPair } from '../helpers/signing-keys.js';
import { startImmudbProxy, type ImmudbProxy } from '../helpers/immudb-proxy.js';
import { until } from '../helpers/until.js';

const dir = mkdtempSync(join(tmpdir(), 'kia-verify-cmd-'));
const keyPair = (name: string) => signingKeyPair(dir, name);
const server = keyPair('server');
const other = keyPair('other');

let immudb: ImmudbServer;
let proxy: ImmudbProxy;
/** Audit ids written per phase, the tx ids of each phase, and their commit times (s). */
const phases: Array<{ ids: string[]; txs: number[]; ts: number[] }> = [];
const env = () => ({ IMMUDB_PASSWORD: immudb.password, IMMUDB_AUDIT_SERVER_PUBLIC_KEY: server.pub });
const auditor = () => mkdtempSync(join(dir, 'auditor-'));
const target = (db: string, stateDir: string, prefix = 'v') => cliTarget(immudb, db, prefix, stateDir);
const json = (stdout: string) => stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
const iso = (s: number) => new Date(s * 1000).toISOString();

async function client(db: string, create = false) {
  return ImmudbClient.connect({ host: immudb.host, port: immudb.port, username: immudb.username, password: immudb.password, database: db, createDatabase: create });
}

/** One tx with `n` audit entries under prefix v (and a key of another kind). */
async function writeTx(c: ImmudbClient, n: number): Promise<{ ids: string[]; tx: number; ts: number }> {
  const ids = Array.from({ length: n }, () => randomUUID());
  const kvs = ids.map((id) => ({ key: Buffer.from(`v:entry:${id}`), value: Buffer.from(JSON.stringify({ id })) }));
  kvs.push({ key: Buffer.from(`v:other:${randomUUID()}`), value: Buffer.from('x') });
  const h = await c.set(kvs);
  const tx = Number(h.id);
  const header = parseTxHeader((await c.txById(tx, EntryTypeAction.EXCLUDE)).header, 'header');
  return { ids, tx, ts: Number(header.ts) };
}

test.before(async () => {
  immudb = await startImmudb({ args: ['--signingKey', server.priv] });
  proxy = await startImmudbProxy({ host: immudb.host, port: immudb.port });
  const c = await client('timed', true);
  // Three phases of transactions, each committed in a later second than the one before.
  let lastTs = 0;
  for (const txs of [2, 3, 2]) {
    const phase = { ids: [] as string[], txs: [] as number[], ts: [] as number[] };
    await until('the server clock to reach the next second', async () => (Math.floor(Date.now() / 1000) > lastTs ? true : undefined), 10_000);
    for (let i = 0; i < txs; i++) {
      const w = await writeTx(c, 1 + i);
      phase.ids.push(...w.ids);
      phase.txs.push(w.tx);
      phase.ts.push(w.ts);
    }
    lastTs = Math.max(...phase.ts);
    phases.push(phase);
  }
  await c.close();
  // Phases must be in distinct seconds for the assertions below (the wait above ensures it).
  for (let i = 1; i < phases.length; i++) if (Math.min(...phases[i]!.ts) <= Math.max(...phases[i - 1]!.ts)) throw new Error(`phases overlap: ${JSON.stringify(phases)}`);
  const e = await client('noentries', true);
  await e.set([{ key: Buffer.from('other:thing'), value: Buffer.from('x') }]);
  await e.close();
});
test.after.always(async () => {
  await proxy?.close();
  await immudb?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test.serial('verify --all --since/--until verifies the transactions committed in that time, and says which', async (t) => {
  const [a, b, c] = phases as [typeof phases[0], typeof phases[0], typeof phases[0]];
  const d = auditor();
  const r = await runCli([...target('timed', d), '--json', 'verify', '--all', '--since', iso(b.ts[0]!), '--until', iso(c.ts[0]!)], env());
  t.is(r.code, 0, r.stderr);
  const j = json(r.stdout)[0]!;
  t.like(j, {
    verified: true, first_contact: true, from_tx: b.txs[0], to_tx: b.txs.at(-1), transactions: b.txs.length, entries: b.ids.length,
    walked_from_tx: a.txs.at(-1), walked_to_tx: c.txs[0], first_time: iso(b.ts[0]!).replace('.000Z', 'Z'), last_time: iso(b.ts.at(-1)!).replace('.000Z', 'Z'),
    // A range after a gap does not continue the audited history: the checkpoint stays.
    checkpoint: 0, trusted_tx: c.txs[0],
  });
  t.regex(r.stderr, /FIRST CONTACT/);
  const human = await runCli([...target('timed', d), 'verify', '--all', '--since', iso(b.ts[0]!), '--until', iso(c.ts[0]!)], env());
  t.is(human.code, 0, human.stderr);
  t.regex(human.stdout, new RegExp(`^verified: transactions ${b.txs[0]}..${b.txs.at(-1)} of timed in \\S+ \\.\\. \\S+ on server \\S+ \\(3 transactions, 6 audit entries, committed \\S+ \\.\\. \\S+\\); trusted now: tx \\d+\\n`));
  t.regex(human.stdout, new RegExp(`\n  bounded by tx ${a.txs.at(-1)} before it and tx ${c.txs[0]} after it: their verified commit times leave no other transaction in the time range\n`));
  t.notRegex(human.stderr, /FIRST CONTACT/, 'not a first contact any more');
  // --since alone, relative: to the end; from the first tx, it continues the checkpoint.
  const all = await runCli([...target('timed', d), '--json', 'verify', '--all', '--since', '1h'], env());
  t.is(all.code, 0, all.stderr);
  t.like(json(all.stdout)[0], { from_tx: 1, to_tx: c.txs.at(-1), entries: a.ids.length + b.ids.length + c.ids.length, first_contact: false, checkpoint: c.txs.at(-1) });
  // --until alone: from the checkpoint (fresh auditor: tx 1) up to the last tx before it.
  const early = await runCli([...target('timed', auditor()), '--json', 'verify', '--all', '--until', iso(b.ts[0]!)], env());
  t.is(early.code, 0, early.stderr);
  t.like(json(early.stdout)[0], { from_tx: 1, to_tx: a.txs.at(-1), entries: a.ids.length, walked_to_tx: b.txs[0], checkpoint: b.txs[0] });
});

test.serial('nothing verified is exit 1 and says what was verified: a --since past the end, --from-tx past the end, nothing new, no entries, a prefix that matches nothing', async (t) => {
  const last = phases.at(-1)!;
  const d = auditor();
  const future = await runCli([...target('timed', d), '--json', 'verify', '--all', '--since', iso(last.ts.at(-1)! + 3600)], env());
  t.is(future.code, 1, future.stderr);
  t.regex(future.stderr, new RegExp(`nothing verified: no transaction of timed was committed at or after \\S+; the last, tx ${last.txs.at(-1)}, was committed at ${iso(last.ts.at(-1)!).replace('.000Z', 'Z')} \\(the chain of tx ${last.txs.at(-1)}..${last.txs.at(-1)} was verified\\)`));
  t.like(json(future.stdout)[0], { verified: true, transactions: 0, entries: 0 });
  const past = await runCli([...target('timed', d), 'verify', '--all', '--from-tx', '999'], env());
  t.is(past.code, 1);
  t.regex(past.stderr, /nothing verified: --from-tx 999 is past the end of timed \(tx \d+\)/);
  t.is((await runCli([...target('timed', d), 'verify', '--all'], env())).code, 0);
  const again = await runCli([...target('timed', d), 'verify', '--all'], env());
  t.is(again.code, 1);
  t.regex(again.stderr, /nothing new to verify: timed is at tx (\d+), audited up to tx \1/);
  const cut = await runCli([...target('timed', d), 'verify', '--all', '--until', iso(phases[1]!.ts[0]!)], env());
  t.is(cut.code, 1);
  t.regex(cut.stderr, new RegExp(`nothing verified: the range starts at tx ${last.txs.at(-1)! + 1}, after the checkpoint \\(audited up to tx ${last.txs.at(-1)}\\), past the last transaction before \\S+ \\(tx ${phases[0]!.txs.at(-1)}\\)`));
  const none = await runCli([...target('noentries', auditor()), 'verify', '--all'], env());
  t.is(none.code, 1);
  t.regex(none.stdout, /^verified: transactions 1\.\.1 of noentries/);
  t.regex(none.stderr, /verified transactions 1\.\.1 hold no audit entry under prefix "v"; there is no audit entry under prefix "v" in database noentries at all \(is --prefix the plugin's key_prefix\?\)/);
  const wrongPrefix = await runCli([...target('timed', auditor(), 'nope'), 'verify', '--all'], env());
  t.is(wrongPrefix.code, 1);
  t.regex(wrongPrefix.stderr, /no audit entry under prefix "nope" in database timed at all/);
  const missing = await runCli([...target('timed', auditor(), 'nope'), 'verify', phases[0]!.ids[0]!], env());
  t.is(missing.code, 1);
  t.regex(missing.stderr, /not found in immudb database timed .*no audit entry under prefix "nope"/);
});

test.serial('usage errors exit 2 for every command', async (t) => {
  const d = auditor();
  const cases: string[][] = [
    ['verify', '--all', '--since', 'yesterday'],
    ['verify', '--all', '--since', '1h', '--from-tx', '2'],
    ['verify', '--all', '--since', '1h', '--until', '2h'],
    ['verify', '--since', '1h', phases[0]!.ids[0]!],
    ['verify', '--all', '--from-tx', '0'],
    ['--trust-anchor', '12:zz', 'verify', '--all'],
    ['--server-public-key', join(dir, 'missing.pem'), 'verify', '--all'],
    ['--server-public-key', server.priv + '.nope', 'get', phases[0]!.ids[0]!],
    ['--password-file', join(dir, 'missing'), 'verify', '--all'],
    ['get', 'not-an-id'],
    ['find', '--trace', 'xyz'],
    ['status', '--metrics-url', 'not a url'],
    ['trust', 'reset', '--bogus'],
    ['search', '--status', '9'],
    ['export', '--format', 'xml'],
    ['serve', '--port', 'x'],
    ['--state-dir', '/proc/self/kia', 'verify', '--all'],
    ['hash', 'x', '--pseudonym-key-file', join(dir, 'missing'), '--pseudonym-key-id', 'k'],
  ];
  for (const args of cases) {
    const r = await runCli([...target('timed', d), ...args], env());
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
  }
  writeFileSync(join(dir, 'bad.pem'), 'not a key');
  const bad = await runCli([...target('timed', d), '--server-public-key', join(dir, 'bad.pem'), 'verify', '--all'], env());
  t.is(bad.code, 2);
  t.regex(bad.stderr, /server public key is not a PEM public key/);
});

test.serial('many ids: each bad one reported on its own line, the others verified, the exit code the worst', async (t) => {
  const [a, b] = phases as [typeof phases[0], typeof phases[0]];
  const d = auditor();
  const missing = '01900000-0000-7000-8000-000000000000';
  const ids = [a.ids[0]!, 'not-an-id', missing, b.ids[0]!];
  const r = await runCli([...target('timed', d), '--json', 'verify', ...ids], env());
  t.is(r.code, 2, r.stderr);
  const lines = json(r.stdout);
  t.is(lines.length, 4);
  t.like(lines[0], { verified: true, first_contact: true });
  t.like(lines[1], { id: 'not-an-id', verified: false, exit_code: 2 });
  t.like(lines[2], { id: missing, verified: false, exit_code: 1 });
  t.like(lines[3], { verified: true, first_contact: true });
  t.regex(r.stderr, /not an audit id: "not-an-id"/);
  t.regex(r.stderr, new RegExp(`audit entry ${missing} not found`));
  t.regex(r.stderr, /2 of 4 audit ids verified; 1 malformed, 1 not found \(exit 2\)/);
  const notFound = await runCli([...target('timed', d), 'verify', a.ids[1]!, missing], env());
  t.is(notFound.code, 1);
  t.regex(notFound.stdout, /^verified: v:entry:/);

  // A forged answer for one id (through a man in the middle): exit 3, the others still verified.
  const forged = b.ids[1]!;
  proxy.hook('VerifiableGet', async ({ request, forward }) => {
    const up = await forward();
    if (up.error || !(request.keyRequest.key as Buffer).toString().endsWith(forged)) return up;
    return { response: { ...up.response, entry: { ...up.response.entry, value: Buffer.from(JSON.stringify({ id: forged, forged: true })) } } };
  });
  t.teardown(() => proxy.clearHooks());
  const via = ['--address', `${proxy.host}:${proxy.port}`, '--username', immudb.username, '--database', 'timed', '--prefix', 'v', '--state-dir', auditor()];
  const m = await runCli([...via, '--json', 'verify', a.ids[0]!, forged, missing, b.ids[0]!], env());
  t.is(m.code, 3, m.stderr);
  const ml = json(m.stdout);
  t.deepEqual(ml.map((l) => l.verified), [true, false, false, true]);
  t.is(ml[1]!.exit_code, 3);
  t.regex(m.stderr, new RegExp(`VERIFICATION FAILED: audit entry ${forged}: `));
  t.regex(m.stderr, /2 of 4 audit ids verified; 1 failed verification, 1 not found \(exit 3\)/);
});

test.serial('first contact is said loudly, on verify and verify --all, and flagged in --json', async (t) => {
  const id = phases[0]!.ids[0]!;
  const d = auditor();
  const first = await runCli([...target('timed', d), '--json', 'verify', id], env());
  t.is(first.code, 0, first.stderr);
  t.regex(first.stderr, /FIRST CONTACT with log timed .*nothing proves this history was not forged before now.*--trust-anchor/);
  t.is(json(first.stdout)[0]!.first_contact, true);
  const second = await runCli([...target('timed', d), '--json', 'verify', id], env());
  t.is(second.stderr, '');
  t.is(json(second.stdout)[0]!.first_contact, false);
  const human = await runCli([...target('timed', auditor()), 'verify', id], env());
  t.regex(human.stdout, /, first contact: no state was trusted before, nothing anchors this history before now; trusted now: tx \d+\n/);
  t.regex(human.stderr, /^immudb-audit: FIRST CONTACT with log timed/);
  t.notRegex(human.stdout, /nothing \(first contact/);
  const all = await runCli([...target('timed', auditor()), '--json', 'verify', '--all'], env());
  t.is(all.code, 0, all.stderr);
  t.regex(all.stderr, /FIRST CONTACT with log timed/);
  t.is(json(all.stdout)[0]!.first_contact, true);
});

test.serial('a trust anchor pins the history: accepted when the server proves it, refused (exit 3) otherwise', async (t) => {
  const c = await client('timed');
  const tx = phases[1]!.txs[0]!;
  const alh = txAlh(parseTxHeader((await c.txById(tx, EntryTypeAction.EXCLUDE)).header, 'h')).toString('hex');
  await c.close();
  const wrong = alh.replace(/^./, (ch) => (ch === '0' ? '1' : '0'));
  const id = phases[2]!.ids[0]!;
  // First contact, pinned.
  const d = auditor();
  const ok = await runCli([...target('timed', d), '--trust-anchor', `${tx}:${alh}`, '--json', 'verify', '--all'], env());
  t.is(ok.code, 0, ok.stderr);
  t.notRegex(ok.stderr, /FIRST CONTACT/);
  t.regex(ok.stderr, new RegExp(`first contact with log timed: its history is pinned by --trust-anchor tx ${tx}`));
  t.true(json(ok.stdout)[0]!.first_contact);
  // First contact, the wrong Alh: nothing is trusted.
  const d2 = auditor();
  const bad = await runCli([...target('timed', d2), '--trust-anchor', `${tx}:${wrong}`, 'verify', id], env());
  t.is(bad.code, 3, bad.stderr);
  t.regex(bad.stderr, new RegExp(`^immudb-audit: VERIFICATION FAILED: immudb at \\S+ \\(server \\S+\\) does not hold the trust anchor tx ${tx} Alh ${wrong}: `));
  t.throws(() => readFileSync(join(d2, 'logs', 'timed.json')), undefined, 'no state trusted after a refused anchor');
  // Beyond the server's history.
  const beyond = await runCli([...target('timed', auditor()), '--trust-anchor', `99999:${alh}`, 'verify', id], env());
  t.is(beyond.code, 3);
  t.regex(beyond.stderr, /reports tx \d+, before the trust anchor tx 99999/);
  // With a trusted state (tx > anchor): must agree with it.
  const agree = await runCli([...target('timed', d), '--trust-anchor', `${tx}:${alh}`, 'verify', id], env());
  t.is(agree.code, 0, agree.stderr);
  const disagree = await runCli([...target('timed', d), '--trust-anchor', `${tx}:${wrong}`, 'verify', id], env());
  t.is(disagree.code, 3);
  t.regex(disagree.stderr, /does not hold the trust anchor/);
  // With a trusted state before the anchor: the anchor must extend it.
  const d3 = auditor();
  t.is((await runCli([...target('timed', d3), 'verify', '--all', '--until', iso(phases[1]!.ts[0]!)], env())).code, 0);
  const later = phases[2]!.txs[0]!;
  const c2 = await client('timed');
  const laterAlh = txAlh(parseTxHeader((await c2.txById(later, EntryTypeAction.EXCLUDE)).header, 'h')).toString('hex');
  await c2.close();
  t.is((await runCli([...target('timed', d3), '--trust-anchor', `${later}:${laterAlh}`, 'verify', id], env())).code, 0);
  const d4 = auditor();
  t.is((await runCli([...target('timed', d4), 'verify', '--all', '--until', iso(phases[1]!.ts[0]!)], env())).code, 0);
  const no = await runCli([...target('timed', d4), '--trust-anchor', `${later}:${wrong}`, 'verify', id], env());
  t.is(no.code, 3);
  t.regex(no.stderr, new RegExp(`its tx ${later}, proven from this auditor's trusted state \\(tx \\d+\\), has Alh ${laterAlh}`));
});

test.serial('the state signature is checked with the key from IMMUDB_AUDIT_SERVER_PUBLIC_KEY', async (t) => {
  const id = phases[0]!.ids[0]!;
  const ok = await runCli([...target('timed', auditor()), 'verify', id], env());
  t.is(ok.code, 0, ok.stderr);
  const wrong = await runCli([...target('timed', auditor()), 'verify', '--all'], { ...env(), IMMUDB_AUDIT_SERVER_PUBLIC_KEY: other.pub });
  t.is(wrong.code, 3);
  t.regex(wrong.stderr, /is not signed by the configured server key/);
});

test.serial('a server whose answers while searching for a time range differ from its verified history is refused', async (t) => {
  const b = phases[1]!;
  const reader = await AuditReader.open({ host: immudb.host, port: immudb.port, username: immudb.username, password: immudb.password, database: 'timed' }, 'v', auditor());
  t.teardown(() => reader.close());
  const c = (reader as unknown as { client: ImmudbClient }).client;
  const real = c.txById.bind(c);
  // The server claims the range's first tx was committed an hour earlier: the search puts the
  // range's start after it, and the verified header shows the lie.
  c.txById = async (tx, action) => {
    const r = await real(tx, action);
    if (tx === b.txs[0]) r.header!.ts = String(Number(r.header!.ts) - 3600);
    return r;
  };
  const err = await t.throwsAsync(reader.verifyAll({ since: b.ts[0]! * 1000, until: phases[2]!.ts[0]! * 1000 }));
  t.true(err instanceof VerificationError, err?.message);
  t.regex(err!.message, new RegExp(`tx ${b.txs[0]}: the commit time the server sent while searching for the time range`));
});
