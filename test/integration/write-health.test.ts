// Failures an operator can see and alert on: per destination, /status, `immudb-audit status`
// and /metrics say whether the writer is writing, retrying or halted, the last error with its
// time and kind, and the age of the oldest entry not yet in immudb. A permanent error (wrong
// password, missing database) is logged at error level once, not only counted as retries.
import test from 'ava';
import { simulateWorkers } from '../helpers/kong-driver.js';
import { generateFixtures } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, startAuditStack, waitForEntries, type AuditStack } from '../helpers/audit-stack.js';
import { runCli } from '../helpers/cli.js';
import { until } from '../helpers/until.js';

let stack: AuditStack;
let port: number;
test.before(async () => {
  stack = await startAuditStack({ metrics: true });
  port = stack.metricsPort!;
});
test.after.always(async () => {
  await stack?.dispose();
});

interface DestinationStatus {
  state: string;
  last_error: string | null;
  last_error_at: string | null;
  last_error_kind: string | null;
  oldest_unacked_ms: number | null;
  retries: number;
}

async function destination(name: string): Promise<DestinationStatus | undefined> {
  const body = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { destinations: Record<string, DestinationStatus> };
  return Object.entries(body.destinations).find(([d]) => d.endsWith(`/${name}`))?.[1];
}

function metric(text: string, name: string, labels: RegExp = /./): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.test(l));
  if (!line) throw new Error(`no metric ${name} ${labels}`);
  return Number(line.split(' ').pop());
}

const queue = { max_batch_size: 10, max_coalescing_delay: 0.01, initial_retry_delay: 0.05, max_retry_delay: 0.2 };

test.serial('a wrong password: retrying, the authentication error with its time, logged at error level once', async (t) => {
  const [w] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({ immudb_database: 'defaultdb', immudb_password: 'wrong-password', key_prefix: 'h', queue }));
  const before = Date.now();
  for (const f of generateFixtures(3, { seed: 7 })) await w!.runLogEvent({ 'kong.log.serialize': f.json });
  const s = await until('the writer to report retries', async () => {
    const d = await destination('defaultdb');
    return d && d.retries >= 5 ? d : undefined;
  }, 30_000);
  t.is(s.state, 'retrying');
  t.regex(s.last_error ?? '', /invalid user name or password/);
  t.is(s.last_error_kind, 'authentication');
  t.true(Date.parse(s.last_error_at ?? '') >= before - 1000, `last_error_at ${s.last_error_at}`);
  t.true((s.oldest_unacked_ms ?? 0) > 0);
  const errors = stack.server.logs().split('\n').filter((l) => /ERROR|error/.test(l) && /invalid user name or password/.test(l) && /permanent/.test(l));
  t.is(errors.length, 1, `one error-level line for the permanent error, got:\n${errors.join('\n')}`);

  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  t.is(metric(text, 'kong_immudb_audit_write_failing', /defaultdb/), 1);
  t.is(metric(text, 'kong_immudb_audit_permanent_error', /defaultdb/), 1);
  t.is(metric(text, 'kong_immudb_audit_writer_state', /defaultdb.*state="retrying"|state="retrying".*defaultdb/), 1);
  t.true(metric(text, 'kong_immudb_audit_last_error_timestamp_seconds', /defaultdb/) * 1000 >= before - 1000);

  const cli = await runCli(['status', '--metrics-url', `http://127.0.0.1:${port}`]);
  t.regex(cli.stdout, /defaultdb  RETRYING \(authentication\): .*invalid user name or password/);
  t.regex(cli.stdout, /last_error_at +\d{4}-\d\d-\d\dT/);
  t.is(cli.code, 4, 'status exits 4 while a destination fails to write');

  // Corrected: writing again, the error kept with its time for the record.
  await w!.reconfigure(stack.config({ immudb_database: 'defaultdb', key_prefix: 'h', queue }), { seq: 50 });
  await waitForEntries(await stack.client('defaultdb'), 'h:entry:', 3);
  const ok = await until('the writer to write again', async () => {
    const d = await destination('defaultdb');
    return d?.state === 'writing' ? d : undefined;
  }, 30_000);
  t.regex(ok.last_error ?? '', /invalid user name or password/);
  t.is((await runCli(['status', '--metrics-url', `http://127.0.0.1:${port}`])).code, 0);
});

test.serial('a database that does not exist is a permanent error of its own kind', async (t) => {
  const [w] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({ immudb_database: 'nosuchdb', create_database: false, key_prefix: 'n', queue }));
  for (const f of generateFixtures(2, { seed: 9 })) await w!.runLogEvent({ 'kong.log.serialize': f.json });
  const s = await until('the missing database to be reported', async () => {
    const d = await destination('nosuchdb');
    return d?.last_error ? d : undefined;
  }, 30_000);
  t.is(s.state, 'retrying');
  t.is(s.last_error_kind, 'database');
  t.regex(s.last_error ?? '', /database does not exist/);
});

test.serial('a configuration only the plugin server can check fails StartInstance and is logged at error level, once', async (t) => {
  const config = stack.config({ key_prefix: 'bad', privacy: { pseudonymize: ['client_ip'], pseudonym_key: 'env:KIA_NO_SUCH_VARIABLE', pseudonym_key_id: 'k1' } });
  for (let i = 0; i < 2; i++) {
    const err = await t.throwsAsync(stack.rpc.startInstance(PLUGIN_NAME, config));
    t.regex(err!.message, /privacy\.pseudonym_key: environment variable KIA_NO_SUCH_VARIABLE is not set/);
  }
  // The server's output and its RPC answers travel apart: wait for the line, then count.
  const errorLines = () => stack.server.logs().split('\n').filter((l) => /KIA_NO_SUCH_VARIABLE/.test(l) && /ERROR|error/.test(l) && /not started/.test(l));
  for (const deadline = Date.now() + 30_000; !errorLines().length && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 50));
  const lines = errorLines();
  t.is(lines.length, 1, lines.join('\n') || stack.server.logs().slice(-2000));
  t.regex(lines[0]!, /requests of its route are not audited until the configuration is fixed/);
});
