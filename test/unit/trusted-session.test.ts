// The trusted session: a state or binding that cannot be used fails every time (never read as
// "nothing trusted"), identities and rollbacks are refused, and only trust reset starts again.
import test from 'ava';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resetTrust, TrustedSession, TrustStateError, type TrustedSessionOptions } from '../../plugin/store/trusted-session.js';
import { VerificationError, sha256 } from '../../plugin/store/proofs/index.js';

const DEST = { host: '127.0.0.1', port: 3322, database: 'db' };
const UUID = 'srv-1';

function setup(t: import('ava').ExecutionContext, over: Partial<TrustedSessionOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'kia-session-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const firstContacts: string[] = [];
  const open = () => new TrustedSession({ ...DEST, stateDir: dir, resetCommand: 'immudb-audit trust reset --state-dir X', holder: 'writer', onFirstContact: (m) => firstContacts.push(m), ...over });
  return { dir, open, firstContacts };
}

async function trustTx(s: TrustedSession, txId: number) {
  await s.advance(UUID, { txId, alh: sha256(Buffer.from(`alh ${txId}`)) });
}

test('first contact binds and trusts; a later session loads the state', async (t) => {
  const { dir, open, firstContacts } = setup(t);
  const s = open();
  s.bind(UUID);
  t.is(s.provenSince(), 0);
  t.is(firstContacts.length, 1);
  t.regex(firstContacts[0]!, /^no trusted state for immudb at 127\.0\.0\.1:3322 database db \(server srv-1\)/);
  await trustTx(s, 5);
  await trustTx(s, 4); // older: kept as is
  t.is(s.provenSince(), 5);
  t.is(JSON.parse(readFileSync(join(dir, 'bindings', '127.0.0.1_3322_db.json'), 'utf8')).server_uuid, UUID);
  const again = open();
  again.bind(UUID);
  t.is(again.provenSince(), 5);
  t.is(firstContacts.length, 1);
});

for (const [name, damage] of Object.entries({
  'invalid JSON': (f: string) => writeFileSync(f, '{'),
  empty: (f: string) => writeFileSync(f, ''),
  'wrong fields': (f: string) => writeFileSync(f, JSON.stringify({ server_uuid: UUID, database: 'db', tx_id: 0, alh: 'ab' })),
  'a directory': (f: string) => {
    rmSync(f);
    mkdirSync(f);
  },
})) {
  test(`a trusted state file that cannot be used (${name}) fails every bind, and nothing is written`, async (t) => {
    const { dir, open } = setup(t);
    await trustTx((() => {
      const s = open();
      s.bind(UUID);
      return s;
    })(), 3);
    const file = join(dir, UUID, 'db.json');
    damage(file);
    const s = open();
    for (let i = 0; i < 2; i++) {
      const e = t.throws(() => s.bind(UUID), { instanceOf: TrustStateError });
      t.true(e instanceof VerificationError);
      t.is((e as TrustStateError).file, file);
      t.true(e!.message.startsWith(`trusted state file ${file} `), e!.message);
      t.regex(e!.message, /Trust is never reset implicitly: .* `immudb-audit trust reset --state-dir X` \(see docs\/verification\.md, "When trust fails"\)$/);
    }
    t.is(s.trusted, undefined);
    await t.throwsAsync(trustTx(s, 9), { instanceOf: TrustStateError });
  });
}

test('a binding file that cannot be used fails every bind', (t) => {
  const { dir, open } = setup(t);
  open().bind(UUID);
  const file = join(dir, 'bindings', '127.0.0.1_3322_db.json');
  writeFileSync(file, '{"server_uuid": 7}');
  const s = open();
  for (let i = 0; i < 2; i++) t.throws(() => s.bind(UUID), { instanceOf: TrustStateError, message: new RegExp(`^server binding file ${file.replace(/\./g, '\\.')} has no server_uuid`) });
});

test('another identity and a shorter history are refused, pointing to the docs', async (t) => {
  const { open } = setup(t, { holder: 'auditor' });
  const s = open();
  s.bind(UUID);
  await trustTx(s, 7);
  const other = open();
  t.throws(() => other.bind('srv-2'), { instanceOf: VerificationError, message: /has identity srv-2, but this auditor verified entries on srv-1: .*"When trust fails"\)$/ });
  // A reconnect that reaches another server is caught when its proof is accepted.
  await t.throwsAsync(s.accept('srv-2', { txId: 8, alh: sha256(Buffer.from('x')) }, undefined), { message: /has identity srv-2/ });
  t.notThrows(() => s.refuseRollback(7));
  t.throws(() => s.refuseRollback(6), { message: /^immudb database db reports tx 6, but this auditor verified tx 7 before: its history was rolled back or replaced/ });
});

test('trust reset moves the binding, state and checkpoint aside; with an unreadable binding, the unbound states', async (t) => {
  const { dir, open } = setup(t);
  const s = open();
  s.bind(UUID);
  await trustTx(s, 2);
  writeFileSync(join(dir, UUID, 'db.audited.json'), '{"last_tx":2}');
  const r = resetTrust(dir, DEST);
  t.deepEqual(r.moved.map((m) => m.from).sort(), [join(dir, UUID, 'db.audited.json'), join(dir, UUID, 'db.json'), join(dir, 'bindings', '127.0.0.1_3322_db.json')].sort());
  for (const m of r.moved) t.regex(m.to, /\.reset-\d{4}-\d\d-\d\dT[\d-]+Z$/);
  t.deepEqual(readdirSync(join(dir, UUID)).filter((f) => !f.includes('.reset-')), []);
  const fresh = open();
  fresh.bind(UUID);
  t.is(fresh.provenSince(), 0);

  // Unreadable binding; another destination's binding claims srv-9.
  await trustTx(fresh, 3);
  const other = new TrustedSession({ ...DEST, host: 'other', stateDir: dir, resetCommand: '', holder: 'writer' });
  other.bind('srv-9');
  await other.advance('srv-9', { txId: 4, alh: sha256(Buffer.from('y')) });
  writeFileSync(join(dir, 'bindings', '127.0.0.1_3322_db.json'), 'garbage');
  const r2 = resetTrust(dir, DEST);
  t.deepEqual(r2.moved.map((m) => m.from).sort(), [join(dir, UUID, 'db.json'), join(dir, 'bindings', '127.0.0.1_3322_db.json')].sort());
  t.regex(r2.notes.join('\n'), /is not valid JSON/);
  t.truthy(readFileSync(join(dir, 'srv-9', 'db.json'), 'utf8'), "another destination's state stays");
  t.deepEqual(resetTrust(dir, DEST).moved, []);
});
