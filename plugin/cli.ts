#!/usr/bin/env node
// `immudb-audit`: read and verify audit entries. Connection settings come from flags or the
// environment (IMMUDB_ADDRESS, IMMUDB_USERNAME, IMMUDB_PASSWORD, IMMUDB_DATABASE,
// IMMUDB_AUDIT_KEY_PREFIX); passwords are best given by environment or file, not on the
// command line. Exit codes: 0 ok, 1 not found, nothing matched or failed, 2 usage, 3 verification
// failed (status: a writer halted), 4 (status) a destination's writes are being retried.
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { AuditReader, NotFoundError } from './verify/verified-read.js';
import { findTrace } from './verify/find-trace.js';
import { checkDirectorySync } from './pipeline/path-check.js';
import { VerificationError } from './store/proofs/index.js';
import { FAILOVER_DOC, resetTrust, TRUST_DOC } from './store/trusted-session.js';
import { AuditWriter } from './store/audit-writer.js';
import { lifecycleKey } from './store/key-layout.js';
import { parseAddress } from './config/fields/connection.js';
import { v7 } from 'uuid';
import { createLogger } from './log.js';
import { Version } from './version.js';
import { registerWorkbench } from './workbench/commands.js';
import { COVERAGE_GAP_EXIT, CoverageCollector, coverageJson, coverageText } from './workbench/coverage.js';
import { registerServe } from './console/serve-command.js';

const silentLogger = createLogger('trust', () => undefined);

interface GlobalOptions {
  address: string[];
  log?: string;
  username: string;
  passwordFile?: string;
  serverPublicKey?: string;
  database: string;
  prefix: string;
  stateDir: string;
  json?: boolean;
}

/** --address, repeatable and comma-separated: every server of the log, in order of preference. */
function addresses(o: GlobalOptions): Array<{ host: string; port: number }> {
  const list = (o.address.length ? o.address : [process.env.IMMUDB_ADDRESS ?? '127.0.0.1:3322']).flatMap((a) => a.split(',')).filter((a) => a.trim());
  return list.map((a) => {
    try {
      return parseAddress(a);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  });
}

function logName(o: GlobalOptions): string {
  return o.log ?? o.database;
}

/** No default credentials: a forgotten password must not become the superuser's (exit 2). */
function password(o: GlobalOptions): string {
  if (o.passwordFile) return readFileSync(o.passwordFile, 'utf8').replace(/\r?\n$/, '');
  if (process.env.IMMUDB_PASSWORD) return process.env.IMMUDB_PASSWORD;
  throw new InvalidArgumentError('no immudb password: set IMMUDB_PASSWORD or --password-file');
}

function username(o: GlobalOptions): string {
  if (o.username) return o.username;
  throw new InvalidArgumentError('no immudb user: set IMMUDB_USERNAME or --username');
}

async function withReader<T>(o: GlobalOptions, fn: (r: AuditReader) => Promise<T>): Promise<T> {
  const all = addresses(o);
  // Checked (and created) before the trusted state's recursive mkdir could spin on /proc.
  checkDirectorySync(o.stateDir, '--state-dir');
  const reader = await AuditReader.open(
    { host: all[0]!.host, port: all[0]!.port, username: username(o), password: password(o), database: o.database, callTimeoutMs: 30_000 },
    o.prefix,
    o.stateDir,
    { addresses: all, log: logName(o), serverPublicKey: o.serverPublicKey ? readFileSync(o.serverPublicKey, 'utf8') : undefined },
  );
  try {
    return await fn(reader);
  } finally {
    await reader.close();
  }
}

function print(o: GlobalOptions, human: string, machine: unknown) {
  process.stdout.write(o.json ? JSON.stringify(machine) + '\n' : human + '\n');
}

const program = new Command();
program
  .name('immudb-audit')
  .description('Read and verify kong-immudb-audit entries stored in immudb')
  .version(Version)
  .option('-a, --address <host:port>', 'immudb address; repeat it or separate with commas for a primary and its replicas (any of them is read, each must prove it holds the log) (default: $IMMUDB_ADDRESS, else 127.0.0.1:3322)', (v: string, prev: string[]) => [...prev, v], [] as string[])
  .option('--log <name>', 'name of the audit log this trusted state belongs to (default: the database; the plugin\'s immudb_log_name)', process.env.IMMUDB_AUDIT_LOG_NAME)
  .option('-u, --username <user>', 'immudb user (default: $IMMUDB_USERNAME; required)', process.env.IMMUDB_USERNAME)
  .option('--password-file <file>', 'file holding the immudb password (default: $IMMUDB_PASSWORD; one of them is required)')
  .option('-d, --database <db>', 'immudb database', process.env.IMMUDB_DATABASE ?? 'defaultdb')
  .option('--prefix <prefix>', 'key prefix of the plugin configuration', process.env.IMMUDB_AUDIT_KEY_PREFIX ?? 'audit')
  .option('--state-dir <dir>', "this auditor's own trusted state", process.env.IMMUDB_AUDIT_AUDITOR_STATE_DIR ?? join(homedir(), '.config', 'kong-immudb-audit', 'auditor'))
  .option('--server-public-key <file>', "PEM public key of immudb's state signing key (--signingKey): reject states it did not sign", process.env.IMMUDB_AUDIT_SERVER_PUBLIC_KEY)
  .option('--json', 'machine-readable output')
  .showHelpAfterError()
  // Commander's own usage errors (unknown option, missing argument, invalid value) throw instead
  // of exiting 1, so that every usage error exits 2 (below); subcommands inherit this.
  .exitOverride();

program
  .command('get')
  .description('print an audit entry and its transaction id (no proof checks; see verify)')
  .argument('<audit-id>', 'the audit id (UUID)')
  .action(async (id: string) => {
    const o = program.opts<GlobalOptions>();
    const r = await withReader(o, (reader) => reader.get(id));
    print(o, `tx ${r.txId}  ${r.key}\n${JSON.stringify(r.entry, null, 2)}`, { key: r.key, tx: r.txId, entry: r.entry });
  });

program
  .command('verify')
  .description("verified read: each entry's inclusion in its transaction and that transaction's consistency with this auditor's trusted state")
  .argument('[audit-id...]', 'one or more audit ids (UUID)')
  .option('--all', 'verify every transaction since the last audit (the checkpoint in --state-dir) up to the current state')
  .option('--from-tx <n>', 'with --all: start at this transaction instead of the checkpoint', (v) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a transaction id >= 1');
    return n;
  })
  .action(async (ids: string[], cmd: { all?: boolean; fromTx?: number }) => {
    const o = program.opts<GlobalOptions>();
    if (cmd.all) {
      if (ids.length) throw new InvalidArgumentError('give either audit ids or --all, not both');
      // Coverage of the verified range (gaps per node, silent periods): plugin/workbench/coverage.ts.
      const coverage = new CoverageCollector();
      const r = await withReader(o, (reader) => reader.verifyAll({ ...(cmd.fromTx !== undefined ? { fromTx: cmd.fromTx } : {}), ...coverage.walkHooks() }));
      const cov = coverage.report(r.fromTx <= 1);
      print(
        o,
        (r.transactions
          ? `verified: transactions ${r.fromTx}..${r.toTx} of ${r.database} on server ${r.serverUuid} (${r.transactions} transactions, ${r.entries} audit entries); trusted now: tx ${r.trustedTxId}`
          : `nothing new to verify: ${r.database} is at tx ${r.toTx}, audited up to tx ${r.fromTx - 1}`) + coverageText(cov),
        { verified: true, server_uuid: r.serverUuid, database: r.database, from_tx: r.fromTx, to_tx: r.toTx, transactions: r.transactions, entries: r.entries, trusted_tx: r.trustedTxId, ...coverageJson(cov) },
      );
      if (cov.gaps.length) process.exitCode = COVERAGE_GAP_EXIT;
      return;
    }
    if (!ids.length) throw new InvalidArgumentError('give one or more audit ids, or --all');
    await withReader(o, async (reader) => {
      for (const id of ids) {
        const r = await reader.verify(id);
        const before = r.trustedBefore ? `tx ${r.trustedBefore.txId}` : 'nothing (first contact with this log)';
        print(
          o,
          `verified: ${r.key} in tx ${r.txId}\n  server ${r.serverUuid}, consistent with the state trusted before (${before}); trusted now: tx ${r.trustedAfter.txId}` +
            (ids.length === 1 ? `\n${JSON.stringify(r.entry, null, 2)}` : ''),
          { verified: true, key: r.key, tx: r.txId, server_uuid: r.serverUuid, trusted_before: r.trustedBefore ?? null, trusted_after: r.trustedAfter, entry: r.entry },
        );
      }
    });
  });

program
  .command('find')
  .description("the entries of a trace: candidates from the trace index, kept only when the entry's own trace_id is the trace (exit 3 with --verify, else 1, when the index lists others)")
  .requiredOption('--trace <trace-id>', 'W3C trace id (32 hex characters)')
  .option('--verify', 'verified reads of the entries found (exit 3 if any check fails)')
  .action(async (cmd: { trace: string; verify?: boolean }) => {
    const o = program.opts<GlobalOptions>();
    const verify = Boolean(cmd.verify);
    await withReader(o, async (reader) => {
      const r = await findTrace(reader, cmd.trace, o.prefix, verify);
      if (!r.members.length && !r.mismatches.length) throw new NotFoundError(`no audit entries for trace ${r.traceId} in immudb database ${o.database}`);
      for (const m of r.members) {
        const e = m.entry as { time?: string; what?: { method?: string; path?: string }; outcome?: { status?: number } } | null;
        print(
          o,
          `${m.id}  tx ${m.txId}  ${e?.time ?? ''}  ${e?.what?.method ?? '-'} ${e?.what?.path ?? '-'} -> ${e?.outcome?.status ?? '-'}  ${verify ? 'verified' : 'unverified'}`,
          { id: m.id, key: m.key, tx: m.txId, verified: verify, entry: m.entry },
        );
      }
      // The index lied (or was forged): say so for each key, and fail.
      for (const m of r.mismatches) {
        process.stderr.write(`immudb-audit: ${verify ? 'VERIFICATION FAILED: ' : ''}${m.reason}\n`);
        if (o.json) print(o, '', { id: m.id, key: m.key, verified: verify, mismatch: m.reason, entry_trace_id: m.entryTraceId ?? null });
      }
      if (r.mismatches.length) process.exitCode = verify ? 3 : 1;
    });
  });

program
  .command('status')
  .description("the plugin server's pipeline figures (from its metrics endpoint, IMMUDB_AUDIT_METRICS_PORT); exit 3 when a writer is halted, 4 when writes are being retried")
  .option('--metrics-url <url>', 'base URL of the metrics endpoint', `http://127.0.0.1:${process.env.IMMUDB_AUDIT_METRICS_PORT ?? '9542'}`)
  .action(async (cmd: { metricsUrl: string }) => {
    const o = program.opts<GlobalOptions>();
    const url = new URL('/status', cmd.metricsUrl);
    let body: { pid: number; destinations: Record<string, Record<string, number | string | null>> };
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      body = (await res.json()) as typeof body;
    } catch (e) {
      throw new Error(`cannot read ${url.href}: ${(e as Error).message} (is IMMUDB_AUDIT_METRICS_PORT set for the plugin server?)`);
    }
    const lines = [`plugin server pid ${body.pid}`];
    for (const [dest, s] of Object.entries(body.destinations)) {
      const failing = s.state === 'retrying' ? `  RETRYING (${s.last_error_kind}): ${s.last_error}` : '';
      lines.push(`${dest}${s.halted ? `  HALTED: ${s.halted}` : failing}`);
      for (const k of ['captured', 'spooled', 'written', 'duplicates', 'refused', 'retries', 'verified_batches', 'queued_memory', 'spool_entries', 'spool_bytes', 'oldest_unacked_ms', 'last_tx_id', 'state', 'last_error_at']) {
        lines.push(`  ${k.padEnd(18)} ${s[k] ?? '-'}`);
      }
    }
    if (!Object.keys(body.destinations).length) lines.push('no destination used yet');
    print(o, lines.join('\n'), body);
    if (Object.values(body.destinations).some((s) => s.halted)) process.exitCode = 3;
    else if (Object.values(body.destinations).some((s) => s.state === 'retrying')) process.exitCode = 4;
  });

const trust = program.command('trust').description("this auditor's trusted state, or the plugin writer's");
trust
  .command('reset')
  .description(
    `start trust in a log (--database, --log) again, once you have checked the server: its trusted state is moved aside (renamed with a timestamp, never deleted); the next contact trusts the server's current history, and a lifecycle entry recording the reset is written into the log when the user may write. See ${TRUST_DOC}`,
  )
  .option('--data-dir <dir>', "the plugin server's IMMUDB_AUDIT_DATA_DIR: reset its writer's trust (<dir>/trusted-state) instead of this auditor's --state-dir")
  .option('--server-uuid <uuid>', 'the server identity whose trusted state (kept per server by earlier versions) to move aside, when its binding file cannot be read')
  .option('--no-record', 'do not write the lifecycle entry into the log')
  .action(async (cmd: { dataDir?: string; serverUuid?: string; record: boolean }) => {
    const o = program.opts<GlobalOptions>();
    const all = addresses(o);
    const stateDir = cmd.dataDir ? join(cmd.dataDir, 'trusted-state') : o.stateDir;
    const r = resetTrust(stateDir, { log: logName(o), database: o.database, addresses: all }, cmd.serverUuid);
    const lines = [...r.moved.map((m) => `moved ${m.from} aside to ${m.to}`), ...r.notes];
    let recorded: { key: string; tx: number } | undefined;
    if (r.moved.length) {
      lines.push(
        `trust reset for log ${logName(o)} (database ${o.database}) in ${stateDir}: the next contact trusts the server's current history (trust on first use)` +
          (cmd.dataDir ? '; restart the plugin server so that its halted writer starts again' : ''),
      );
      if (cmd.record) {
        try {
          recorded = await recordLifecycle(o, all, stateDir, {
            event: 'trust_reset', log: logName(o), database: o.database, holder: cmd.dataDir ? 'writer' : 'auditor', state_dir: stateDir,
            previous: r.previous ? { tx_id: r.previous.txId, alh: r.previous.alh, server_uuid: r.previous.serverUuid } : null,
          });
          lines.push(`recorded in the log: ${recorded.key} in tx ${recorded.tx} (the new trusted state starts there)`);
        } catch (e) {
          lines.push(`the reset could not be recorded in the log (${(e as Error).message}); record it in your incident log`);
        }
      }
    }
    print(o, lines.join('\n'), { reset: r.moved.length > 0, state_dir: stateDir, moved: r.moved, notes: r.notes, lifecycle: recorded ?? null });
  });

trust
  .command('move')
  .description(
    `re-anchor trust in a log to the server at --address (e.g. a promoted replica), only once it proves with a consistency proof that its history extends the trusted state: a fork or a shorter history is refused (exit 3). See ${FAILOVER_DOC}`,
  )
  .option('--data-dir <dir>', "the plugin server's IMMUDB_AUDIT_DATA_DIR: move its writer's trust instead of this auditor's --state-dir")
  .action(async (cmd: { dataDir?: string }) => {
    const o = program.opts<GlobalOptions>();
    const stateDir = cmd.dataDir ? join(cmd.dataDir, 'trusted-state') : o.stateDir;
    const all = addresses(o);
    const reader = await AuditReader.open(
      { host: all[0]!.host, port: all[0]!.port, username: username(o), password: password(o), database: o.database, callTimeoutMs: 30_000 },
      o.prefix, stateDir,
      { addresses: all, log: logName(o), serverPublicKey: o.serverPublicKey ? readFileSync(o.serverPublicKey, 'utf8') : undefined },
    );
    try {
      if (!reader.trustedBefore) throw new Error(`no trusted state for log ${logName(o)} in ${stateDir}: nothing to move (the next contact is a first contact)`);
      const m = await reader.moveHere();
      const before = m.before!;
      print(
        o,
        `trust in log ${logName(o)} (database ${o.database}) moved to server ${m.serverUuid} at ${m.address}: its history (tx ${m.after.txId}) extends the state trusted before (tx ${before.txId}, server ${before.serverUuid})`,
        { moved: true, log: logName(o), server_uuid: m.serverUuid, address: m.address, trusted_before: { tx: before.txId, server_uuid: before.serverUuid }, trusted_now: { tx: m.after.txId } },
      );
    } finally {
      await reader.close();
    }
  });

/** Writes a lifecycle entry into the log with a verified write, which becomes the trusted state. */
async function recordLifecycle(o: GlobalOptions, all: Array<{ host: string; port: number }>, stateDir: string, event: Record<string, unknown>): Promise<{ key: string; tx: number }> {
  const id = v7();
  const key = lifecycleKey(o.prefix, id);
  const value = Buffer.from(JSON.stringify({ id, time: new Date().toISOString(), ...event }));
  const writer = new AuditWriter({
    connection: { host: all[0]!.host, port: all[0]!.port, username: username(o), password: password(o), database: o.database, callTimeoutMs: 30_000 },
    addresses: all, log: logName(o), stateDir,
    serverPublicKey: o.serverPublicKey ? readFileSync(o.serverPublicKey, 'utf8') : null,
    logger: silentLogger,
  });
  try {
    const res = await writer.write([{ key: Buffer.from(key), value }]);
    return { key, tx: res.txId };
  } finally {
    await writer.close();
  }
}

registerWorkbench(program, {
  globals: () => program.opts<GlobalOptions>(),
  withReader: (fn) => withReader(program.opts<GlobalOptions>(), fn),
  productVersion: Version,
});
registerServe(program, {
  globals: () => program.opts<GlobalOptions>(),
  withReader: (fn) => withReader(program.opts<GlobalOptions>(), fn),
  productVersion: Version,
  serverPublicKey: () => program.opts<GlobalOptions>().serverPublicKey,
});

program.parseAsync(process.argv).catch((err: unknown) => {
  const o = program.opts<GlobalOptions>();
  const e = err as Error;
  // Commander printed its own message (or help, or the version) already.
  if (err instanceof CommanderError && !(err instanceof InvalidArgumentError)) {
    process.exitCode = err.exitCode === 0 ? 0 : 2;
    return;
  }
  const code = err instanceof VerificationError ? 3 : err instanceof InvalidArgumentError || /^not an? (audit|trace) id/.test(e.message) ? 2 : 1;
  const prefix = err instanceof VerificationError ? 'VERIFICATION FAILED: ' : err instanceof NotFoundError ? '' : 'error: ';
  if (o.json) process.stdout.write(JSON.stringify({ error: e.message, kind: e.name, verified: false }) + '\n');
  process.stderr.write(`immudb-audit: ${prefix}${e.message}\n`);
  process.exitCode = code;
});
