// The immudb-audit CLI against real entries written through the real plugin server.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simulateWorkers } from '../helpers/kong-driver.js';
import { generateFixtures } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, startAuditStack, waitForEntries, type AuditStack } from '../helpers/audit-stack.js';
import { cliTarget, runCli } from '../helpers/cli.js';
import { projectRoot } from '../helpers/kong-driver.js';
import type { AuditEntry } from '../../plugin/capture/audit-entry.js';

let stack: AuditStack;
let auditorDir: string;
let entries: Array<{ tx: string; key: string; entry: AuditEntry }>;
let target: string[];

test.before(async () => {
  stack = await startAuditStack();
  auditorDir = mkdtempSync(join(tmpdir(), 'kia-auditor-'));
  const [w] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({ immudb_database: 'clidb', create_database: true, key_prefix: 'c', queue: { max_batch_size: 8, max_coalescing_delay: 0.01 } }));
  for (const f of generateFixtures(30, { seed: 9 })) await w!.runLogEvent({ 'kong.log.serialize': f.json });
  const stored = await waitForEntries(await stack.client('clidb'), 'c:entry:', 30);
  entries = stored.map((s) => ({ tx: s.tx, key: s.key.toString(), entry: JSON.parse(s.value.toString()) as AuditEntry }));
  target = cliTarget(stack.immudb, 'clidb', 'c', auditorDir);
});
test.after.always(async () => {
  await stack?.dispose();
  if (auditorDir) rmSync(auditorDir, { recursive: true, force: true });
});

const env = () => ({ IMMUDB_PASSWORD: stack.immudb.password });

test.serial('get prints the entry and its transaction', async (t) => {
  const e = entries[3]!;
  const r = await runCli([...target, 'get', e.entry.id], env());
  t.is(r.code, 0, r.stderr);
  t.true(r.stdout.startsWith(`tx ${e.tx}  ${e.key}\n`));
  t.deepEqual(JSON.parse(r.stdout.slice(r.stdout.indexOf('\n') + 1)), e.entry);
  const j = await runCli([...target, '--json', 'get', e.entry.id], env());
  t.deepEqual(JSON.parse(j.stdout), { key: e.key, tx: Number(e.tx), entry: e.entry });
});

test.serial('get of a missing entry exits 1 with a clear message', async (t) => {
  const id = '01900000-0000-7000-8000-000000000000';
  const r = await runCli([...target, 'get', id], env());
  t.is(r.code, 1);
  t.is(r.stderr, `immudb-audit: audit entry ${id} not found in immudb database clidb (key c:entry:${id})\n`);
});

test.serial('a malformed id or address is a usage error (exit 2)', async (t) => {
  const r = await runCli([...target, 'get', 'not-an-id'], env());
  t.is(r.code, 2);
  t.regex(r.stderr, /^immudb-audit: error: not an audit id: "not-an-id"/);
  const a = await runCli(['--address', 'host:99999', 'get', entries[0]!.entry.id], env());
  t.is(a.code, 2);
  t.regex(a.stderr, /invalid address "host:99999"/);
});

test.serial('a wrong password fails clearly and does not echo the password', async (t) => {
  const r = await runCli([...target, 'get', entries[0]!.entry.id], { IMMUDB_PASSWORD: 'wrong-secret-pw' });
  t.is(r.code, 1);
  t.regex(r.stderr, /immudb open session failed: invalid user name or password/);
  t.false(r.stderr.includes('wrong-secret-pw'));
});

test.serial('verify checks proofs, keeps its own trusted state, and advances it', async (t) => {
  const first = await runCli([...target, '--json', 'verify', entries[0]!.entry.id], env());
  t.is(first.code, 0, first.stderr);
  const a = JSON.parse(first.stdout);
  t.true(a.verified);
  t.is(a.trusted_before, null);
  t.is(a.first_contact, true);
  t.deepEqual(a.entry, entries[0]!.entry);
  const last = entries[entries.length - 1]!;
  const second = await runCli([...target, '--json', 'verify', last.entry.id], env());
  t.is(second.code, 0, second.stderr);
  const b = JSON.parse(second.stdout);
  t.is(b.trusted_before.txId, a.trusted_after.txId);
  t.true(b.trusted_after.txId >= Number(last.tx));
  const human = await runCli([...target, 'verify', entries[1]!.entry.id], env());
  t.is(human.code, 0);
  t.regex(human.stdout, /^verified: c:entry:\S+ in tx \d+\n  server \S+, consistent with the state trusted before \(tx \d+\); trusted now: tx \d+\n/);
});

test.serial('verify --all audits every transaction since the checkpoint, then only new ones', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kia-auditor-all-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tgt = cliTarget(stack.immudb, 'clidb', 'c', dir);
  const first = await runCli([...tgt, '--json', 'verify', '--all'], env());
  t.is(first.code, 0, first.stderr);
  const a = JSON.parse(first.stdout);
  t.is(a.verified, true);
  t.is(a.from_tx, 1);
  t.is(a.entries, 30);
  t.is(a.transactions, a.to_tx);
  t.is(a.first_contact, true);
  t.regex(first.stderr, /^immudb-audit: FIRST CONTACT with log clidb/);
  // Nothing new since the checkpoint: nothing was verified, which is not a pass (exit 1).
  const again = await runCli([...tgt, 'verify', '--all'], env());
  t.is(again.code, 1);
  t.is(again.stdout, '');
  t.is(again.stderr, `immudb-audit: nothing new to verify: clidb is at tx ${a.to_tx}, audited up to tx ${a.to_tx}; no audit entry was written since the last audit\n`);
  const both = await runCli([...tgt, 'verify', '--all', entries[0]!.entry.id], env());
  t.is(both.code, 2);
  t.regex(both.stderr, /give either audit ids or --all, not both/);
});

test.serial('output into a pipe that closes early (| head) ends quietly, without a crash', async (t) => {
  // `search ... | head -1`: the reader goes away while the CLI still writes.
  const child = spawn(process.execPath, [join(projectRoot(), 'dist/plugin/cli.js'), ...target, '--json', 'search'], { env: { ...process.env, ...env() }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.once('data', () => child.stdout.destroy());
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  t.notRegex(stderr, /EPIPE|Unhandled|at .*\.js:\d+/, stderr);
  t.true(code === 0 || code === 1, `exit ${code}`);
});
