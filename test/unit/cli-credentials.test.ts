// The auditor CLI has no default credentials: without a user or a password it says what to set
// and exits 2, before any connection (a forgotten password must not become immudb's superuser's).
import test from 'ava';
import { runCli } from '../helpers/cli.js';

const target = ['--address', '127.0.0.1:1', '--database', 'audit', '--state-dir', '/tmp/kia-no-state'];

test('no password: exit 2, naming IMMUDB_PASSWORD and --password-file', async (t) => {
  const r = await runCli([...target, '--username', 'auditor', 'verify', '--all'], { IMMUDB_PASSWORD: '', IMMUDB_USERNAME: '' });
  t.is(r.code, 2, r.stderr);
  t.regex(r.stderr, /no immudb password: set IMMUDB_PASSWORD or --password-file/);
});

test('no user: exit 2, naming IMMUDB_USERNAME and --username', async (t) => {
  const r = await runCli([...target, 'verify', '--all'], { IMMUDB_PASSWORD: 'pw', IMMUDB_USERNAME: '' });
  t.is(r.code, 2, r.stderr);
  t.regex(r.stderr, /no immudb user: set IMMUDB_USERNAME or --username/);
});
