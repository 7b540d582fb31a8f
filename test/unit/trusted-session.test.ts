// The trusted session: trust belongs to the log, a state file that cannot be used fails every
// time (never read as "nothing trusted"), a shorter history is refused, states of earlier
// versions (per server identity) are migrated, and only trust reset starts again.
import test from 'ava';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BehindError, resetTrust, TrustedSession, TrustStateError, type LogServer, type TrustedSessionOptions } from '../../plugin/store/trusted-session.js';
import { VerificationError, sha256 } from '../../plugin/store/proofs/index.js';
import { TrustedStateStore } from '../../plugin/store/trusted-state.js';

const DEST = { log: 'db', database: 'db', addresses: [{ host: '127.0.0.1', port: 3322 }] };
const UUID = 'srv-1';
const alh = (n: number) => sha256(Buffer.from(`alh ${n}`));

function setup(t: import('ava').ExecutionContext, over: Partial<TrustedSessionOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'kia-session-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const firstContacts: string[] = [];
  const notices: string[] = [];
  const open = () => new TrustedSession({
    ...DEST, stateDir: dir, resetCommand: 'immudb-audit trust reset --state-dir X', holder: 'writer',
    onFirstContact: (m) => firstContacts.push(m), onNotice: (m, k) => notices.push(`${k}: ${m}`), ...over,
  });
  return { dir, open, firstContacts, notices };
}

/** A server that must not be asked for a proof (first contact, or a refusal before any proof). */
function server(uuid: string, txId: number): LogServer {
  return { serverUuid: uuid, address: '127.0.0.1:3322', currentTxId: async () => txId, proveTx: async () => { throw new Error('no proof expected'); } };
}

async function trustTx(s: TrustedSession, txId: number, uuid = UUID) {
  await s.advance(uuid, { txId, alh: alh(txId) });
}

test('first contact trusts; the state is kept per log; a later session loads it', async (t) => {
  const { dir, open, firstContacts } = setup(t);
  const s = open();
  await s.admit(server(UUID, 0));
  t.is(s.provenSince(), 0);
  t.is(firstContacts.length, 1);
  t.regex(firstContacts[0]!, /^no trusted state for log db \(database db\) in .*: the history of immudb at 127\.0\.0\.1:3322 \(server srv-1\) is trusted as it is/);
  await trustTx(s, 5);
  await trustTx(s, 4); // older: kept as is
  t.is(s.provenSince(), 5);
  t.like(new TrustedStateStore(dir).load('db', 'db'), { log: 'db', database: 'db', txId: 5, serverUuid: UUID });
  const again = open();
  t.is((await again.load())?.txId, 5);
  t.is(firstContacts.length, 1);
});

test('another server proving the log is noticed and recorded, not refused', async (t) => {
  const { dir, open, notices } = setup(t);
  const s = open();
  await trustTx(s, 5);
  await s.advance('srv-2', { txId: 6, alh: alh(6) }, '10.0.0.2:3322');
  t.regex(notices.join('\n'), /^server-change: log db \(database db\) is now served by server srv-2 at 10\.0\.0\.2:3322, trusted before on server srv-1/m);
  t.is(new TrustedStateStore(dir).load('db', 'db')?.serverUuid, 'srv-2');
});

for (const [name, damage] of Object.entries({
  'invalid JSON': (f: string) => writeFileSync(f, '{'),
  empty: (f: string) => writeFileSync(f, ''),
  'wrong fields': (f: string) => writeFileSync(f, JSON.stringify({ log: 'db', server_uuid: UUID, database: 'db', tx_id: 0, alh: 'ab' })),
  'a directory': (f: string) => {
    rmSync(f);
    mkdirSync(f);
  },
})) {
  test(`a trusted state file that cannot be used (${name}) fails every admission, and nothing is written`, async (t) => {
    const { dir, open } = setup(t);
    await trustTx(open(), 3);
    const file = join(dir, 'logs', 'db.json');
    damage(file);
    const s = open();
    for (let i = 0; i < 2; i++) {
      const e = await t.throwsAsync(s.admit(server(UUID, 3)), { instanceOf: TrustStateError });
      t.true(e instanceof VerificationError);
      t.is((e as TrustStateError).file, file);
      t.true(e!.message.startsWith(`trusted state file ${file} `), e!.message);
      t.regex(e!.message, /Trust is never reset implicitly: .* `immudb-audit trust reset --state-dir X` \(see docs\/verification\.md, "When trust fails"\)$/);
    }
    t.is(s.trusted, undefined);
    await t.throwsAsync(trustTx(s, 9), { instanceOf: TrustStateError });
  });
}

test('a shorter history is refused as lag or rollback, pointing to the docs', async (t) => {
  const { open } = setup(t, { holder: 'auditor' });
  const s = open();
  await trustTx(s, 7);
  const e = await t.throwsAsync(s.admit(server('srv-2', 6)), { instanceOf: BehindError });
  t.regex(e!.message, /^immudb at 127\.0\.0\.1:3322 \(server srv-2\) reports tx 6 of db, but this auditor verified tx 7 of log db before on server srv-1: its history is shorter\. Either it lags .*"Failover"\) or its history was rolled back or replaced \(see docs\/verification\.md, "When trust fails"\)$/);
  t.notThrows(() => s.refuseRollback(7, { serverUuid: UUID, address: 'a:1' }));
  t.throws(() => s.refuseRollback(6, { serverUuid: UUID, address: 'a:1' }), { instanceOf: BehindError, message: /reports tx 6 of db, but this auditor verified tx 7/ });
});

test('a state kept per server identity by an earlier version is migrated through the binding', async (t) => {
  const { dir, open, notices } = setup(t);
  mkdirSync(join(dir, 'bindings'));
  writeFileSync(join(dir, 'bindings', '127.0.0.1_3322_db.json'), JSON.stringify({ server_uuid: UUID }));
  mkdirSync(join(dir, UUID));
  writeFileSync(join(dir, UUID, 'db.json'), JSON.stringify({ server_uuid: UUID, database: 'db', tx_id: 4, alh: alh(4).toString('hex') }));
  const s = open();
  t.is((await s.load())?.txId, 4);
  t.is(s.migratedFrom, UUID);
  t.regex(notices.join('\n'), /^migration: trusted state of log db migrated from .*srv-1\/db\.json \(server srv-1, tx 4\)/m);
  t.is(new TrustedStateStore(dir).load('db', 'db')?.txId, 4);
  // A binding that cannot be read fails the migration, every time.
  rmSync(join(dir, 'logs'), { recursive: true });
  writeFileSync(join(dir, 'bindings', '127.0.0.1_3322_db.json'), '{"server_uuid": 7}');
  for (let i = 0; i < 2; i++) await t.throwsAsync(open().load(), { instanceOf: TrustStateError, message: /^server binding file .* has no server_uuid/ });
});

test('trust reset moves the log state, its checkpoint and what earlier versions kept aside', async (t) => {
  const { dir, open } = setup(t);
  await trustTx(open(), 2);
  writeFileSync(join(dir, 'logs', 'db.audited.json'), '{"last_tx":2}');
  mkdirSync(join(dir, 'bindings'));
  writeFileSync(join(dir, 'bindings', '127.0.0.1_3322_db.json'), JSON.stringify({ server_uuid: UUID }));
  mkdirSync(join(dir, UUID));
  writeFileSync(join(dir, UUID, 'db.json'), '{}');
  const r = resetTrust(dir, DEST);
  t.deepEqual(r.moved.map((m) => m.from).sort(), [join(dir, 'logs', 'db.audited.json'), join(dir, 'logs', 'db.json'), join(dir, UUID, 'db.json'), join(dir, 'bindings', '127.0.0.1_3322_db.json')].sort());
  t.like(r.previous, { txId: 2, serverUuid: UUID });
  for (const m of r.moved) t.regex(m.to, /\.reset-\d{4}-\d\d-\d\dT[\d-]+Z$/);
  t.deepEqual(readdirSync(join(dir, 'logs')).filter((f) => !f.includes('.reset-')), []);
  t.is(await open().load(), undefined);
  t.deepEqual(resetTrust(dir, DEST).moved, []);
});
