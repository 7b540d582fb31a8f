#!/usr/bin/env node
// `immudb-audit`: read and verify audit entries. Connection settings come from flags or the
// environment (IMMUDB_ADDRESS, IMMUDB_USERNAME, IMMUDB_PASSWORD, IMMUDB_DATABASE,
// IMMUDB_AUDIT_KEY_PREFIX); passwords are best given by environment or file, not on the
// command line. Exit codes: 0 ok, 1 not found, nothing matched or verified, or failed, 2 usage
// (every command, options and the files they name), 3 verification failed (status: a writer
// halted), 4 (status) a destination's writes are being retried. 5 (verify --all, search) a coverage gap, whether a loss record of the plugin explains it or not. Several ids: the worst of theirs.
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { AuditReader, NotFoundError, parseTrustAnchor, type TrustAnchor, type VerifyAllResult } from './reader/audit-reader.js';
import { createProgress } from './cli/progress.js';
import { parseTimeSpec } from './workbench/time-spec.js';
import { findTrace } from './reader/find-trace.js';
import { checkDirectorySync } from './pipeline/path-check.js';
import { parseServerPublicKey, VerificationError } from './store/proofs/index.js';
import { FAILOVER_DOC, resetTrust, TRUST_DOC } from './store/trusted-session.js';
import { AuditWriter } from './store/audit-writer.js';
import { lifecycleKey } from './store/key-layout.js';
import { parseAddress } from './config/fields/connection.js';
import { v7 } from 'uuid';
import { createLogger } from './log.js';
import { Version } from './version.js';
import { registerWorkbench, traceIdsFromIndex } from './workbench/commands.js';
import { COVERAGE_GAP_EXIT, coverageJson, coverageText, verifyAllCovered } from './workbench/coverage.js';
import { registerServe } from './console/serve-command.js';
import { addAuditorKeyOptions, openCheckpoint, registerEvidence, type AuditorKeyOptions } from './evidence/commands.js';

const silentLogger = createLogger('trust', () => undefined);

/** The reader of our output went away (`| head`): stop quietly with the exit code so far, as Unix tools do. */
const isBrokenPipe = (e: unknown) => (e as NodeJS.ErrnoException | undefined)?.code === 'EPIPE';
process.stdout.on('error', (e) => {
  if (isBrokenPipe(e)) process.exit(process.exitCode ?? 0);
  throw e;
});

interface GlobalOptions {
  address: string[];
  log?: string;
  username: string;
  passwordFile?: string;
  serverPublicKey?: string;
  trustAnchor?: TrustAnchor;
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

/** A parser for commander: any error it throws is a usage error (exit 2). */
function usage<T>(parse: (v: string) => T): (v: string) => T {
  return (v) => {
    try {
      return parse(v);
    } catch (e) {
      throw e instanceof InvalidArgumentError ? e : new InvalidArgumentError((e as Error).message);
    }
  };
}

const NOW = Date.now();
const parseTime = usage((v: string) => {
  const t = parseTimeSpec(v, NOW);
  if (t instanceof Error) throw t;
  return t;
});

const parseTxId = usage((v: string) => {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new Error('expected a transaction id >= 1');
  return n;
});

function logName(o: GlobalOptions): string {
  return o.log ?? o.database;
}

/** No default credentials: a forgotten password must not become the superuser's (exit 2). */
function password(o: GlobalOptions): string {
  if (o.passwordFile) return readOption(o.passwordFile, '--password-file').replace(/\r?\n$/, '');
  if (process.env.IMMUDB_PASSWORD) return process.env.IMMUDB_PASSWORD;
  throw new InvalidArgumentError('no immudb password: set IMMUDB_PASSWORD or --password-file');
}

function username(o: GlobalOptions): string {
  if (o.username) return o.username;
  throw new InvalidArgumentError('no immudb user: set IMMUDB_USERNAME or --username');
}

/** A file named by an option; one that cannot be read is a usage error (exit 2). */
function readOption(file: string, option: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new InvalidArgumentError(`cannot read ${option} ${file}: ${(e as Error).message}`);
  }
}

/** The PEM of --server-public-key, checked: a malformed key is a usage error, not a failed proof. */
function serverPublicKey(o: GlobalOptions): string | undefined {
  if (!o.serverPublicKey) return undefined;
  const pem = readOption(o.serverPublicKey, '--server-public-key');
  try {
    parseServerPublicKey(pem);
  } catch (e) {
    throw new InvalidArgumentError(`--server-public-key ${o.serverPublicKey}: ${(e as Error).message}`);
  }
  return pem;
}

/** Loud, on stderr: a first contact trusts whatever history the server shows now (decisions #25). */
function warnFirstContact(o: GlobalOptions, reader: AuditReader) {
  if (reader.trustedBefore) return;
  if (o.trustAnchor) {
    process.stderr.write(`immudb-audit: first contact with log ${logName(o)}: its history is pinned by --trust-anchor tx ${o.trustAnchor.txId} (server ${reader.serverUuid} proved it holds it)\n`);
    return;
  }
  process.stderr.write(
    `immudb-audit: FIRST CONTACT with log ${logName(o)} (database ${o.database}): this auditor has no trusted state for it in ${o.stateDir}, ` +
      `so the history server ${reader.serverUuid} shows now is trusted as it is: nothing proves this history was not forged before now. ` +
      `Pin it with --trust-anchor <tx>:<alh> (a tx and Alh from a record you trust) or a checkpoint\n`,
  );
}

/** The trust anchor is proven once per process (it then is, or agrees with, the trusted state). */
let anchorChecked = false;

async function withReader<T>(o: GlobalOptions, fn: (r: AuditReader) => Promise<T>, opts: { warnFirstContact?: boolean } = {}): Promise<T> {
  const all = addresses(o);
  const key = serverPublicKey(o);
  const conn = { host: all[0]!.host, port: all[0]!.port, username: username(o), password: password(o), database: o.database, callTimeoutMs: 30_000 };
  // Checked (and created) before the trusted state's recursive mkdir could spin on /proc.
  try {
    checkDirectorySync(o.stateDir, '--state-dir');
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  const reader = await AuditReader.open(conn, o.prefix, o.stateDir, { addresses: all, log: logName(o), serverPublicKey: key });
  try {
    if (o.trustAnchor && !anchorChecked) {
      await reader.checkTrustAnchor(o.trustAnchor);
      anchorChecked = true;
    }
    const result = await fn(reader);
    // Said once the work held (a failed proof says enough), before the process exits.
    if (opts.warnFirstContact) warnFirstContact(o, reader);
    return result;
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
  .option('--server-public-key <file>', "PEM public key of immudb's state signing key (--signingKey): reject states it did not sign (default: $IMMUDB_AUDIT_SERVER_PUBLIC_KEY)", process.env.IMMUDB_AUDIT_SERVER_PUBLIC_KEY)
  .option('--trust-anchor <tx:alh>', "pin trust in the log to a transaction and its Alh (hex) from a record you trust: the server must prove its history holds it (on first contact, and against this auditor's trusted state); exit 3 if not", usage(parseTrustAnchor))
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

const verifyCommand = program
  .command('verify')
  .description(
    "verified read: each entry's inclusion in its transaction and that transaction's consistency with this auditor's trusted state; " +
      'with --all, every transaction of a range as one proven chain. Exit 0 verified, 1 nothing verified (not found, no transaction or no audit entry in the range), 2 usage, 3 verification failed, 5 coverage gap (a node\'s sequence numbers have a gap, recorded as lost by the plugin or unexplained); with several ids, the worst of theirs',
  )
  .argument('[audit-id...]', 'one or more audit ids (UUID)')
  .option('--all', 'verify every transaction since the last audit (the checkpoint in --state-dir) up to the current state')
  .option('--from-tx <n>', 'with --all: start at this transaction instead of the checkpoint', parseTxId)
  .option('--since <time>', 'with --all: the transactions committed at or after this time (RFC 3339, or back from now: 30m, 24h, 7d) instead of those since the checkpoint', parseTime)
  .option('--until <time>', 'with --all: only the transactions committed before this time (RFC 3339, or back from now)', parseTime)
  .option('--checkpoint <file>', 'with --all: the server must also prove that its history extends this checkpoint (immudb-audit checkpoint; exit 3 otherwise)');
addAuditorKeyOptions(verifyCommand)
  .action(async (ids: string[], cmd: VerifyOptions) => {
    const o = program.opts<GlobalOptions>();
    if (cmd.all) return verifyAllCommand(o, ids, cmd);
    for (const flag of ['fromTx', 'since', 'until', 'checkpoint', 'auditorPublicKey'] as const) {
      if (cmd[flag] !== undefined) throw new InvalidArgumentError(`--${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} goes with --all`);
    }
    if (!ids.length) throw new InvalidArgumentError('give one or more audit ids, or --all');
    process.exitCode = await verifyIds(o, ids);
  });

interface VerifyOptions extends AuditorKeyOptions {
  all?: boolean;
  fromTx?: number;
  since?: number;
  until?: number;
  checkpoint?: string;
}

/** Exit codes, the worst first: a failed proof, a usage error, nothing found. */
const EXIT = { verificationFailed: 3, usage: 2, notFound: 1, ok: 0 } as const;

function exitCodeOf(e: unknown): number {
  if (e instanceof VerificationError) return EXIT.verificationFailed;
  if (e instanceof InvalidArgumentError || /^not an? (audit|trace) id/.test((e as Error).message)) return EXIT.usage;
  return EXIT.notFound;
}

/**
 * `verify <id>...`: each id verified on its own; a malformed, missing or failed one is reported
 * on its own line (and a JSON line), the others are still verified. Returns the worst exit code.
 */
async function verifyIds(o: GlobalOptions, ids: string[]): Promise<number> {
  let worst: number = EXIT.ok;
  let verified = 0;
  const failures: Record<number, number> = {};
  await withReader(o, async (reader) => {
    let prefixChecked: boolean | undefined;
    for (const id of ids) {
      try {
        const r = await reader.verify(id);
        verified++;
        const since = r.firstContact
          ? o.trustAnchor ? `first contact, pinned by the trust anchor tx ${o.trustAnchor.txId}` : 'first contact: no state was trusted before, nothing anchors this history before now'
          : `consistent with the state trusted before (tx ${r.trustedBefore!.txId})`;
        print(
          o,
          `verified: ${r.key} in tx ${r.txId}\n  server ${r.serverUuid}, ${since}; trusted now: tx ${r.trustedAfter.txId}` + (ids.length === 1 ? `\n${JSON.stringify(r.entry, null, 2)}` : ''),
          { verified: true, key: r.key, tx: r.txId, server_uuid: r.serverUuid, first_contact: r.firstContact, trusted_before: r.trustedBefore ?? null, trusted_after: r.trustedAfter, entry: r.entry },
        );
      } catch (e) {
        const code = exitCodeOf(e);
        // Anything else (the connection, the state directory) is not about this id: stop.
        if (!(e instanceof VerificationError || e instanceof NotFoundError || code === EXIT.usage)) {
          if (verified || Object.keys(failures).length) (e as Error).message += ` (after ${verified} of ${ids.length} audit ids verified)`;
          throw e;
        }
        let message = (e as Error).message;
        if (e instanceof NotFoundError && !(prefixChecked ??= await reader.anyAuditEntry())) {
          message += `; there is no audit entry under prefix "${o.prefix}" in database ${o.database} at all (is --prefix the plugin's key_prefix?)`;
        }
        const label = code === EXIT.verificationFailed ? `VERIFICATION FAILED: ${ids.length > 1 ? `audit entry ${id}: ` : ''}` : code === EXIT.usage ? 'error: ' : '';
        process.stderr.write(`immudb-audit: ${label}${message}\n`);
        if (o.json) process.stdout.write(JSON.stringify({ id, verified: false, error: message, kind: (e as Error).name, exit_code: code }) + '\n');
        failures[code] = (failures[code] ?? 0) + 1;
        worst = Math.max(worst, code);
      }
    }
    if (verified) warnFirstContact(o, reader);
  });
  if (ids.length > 1 && worst !== EXIT.ok) {
    const parts = [[EXIT.verificationFailed, 'failed verification'], [EXIT.usage, 'malformed'], [EXIT.notFound, 'not found']] as const;
    const counts = parts.filter(([c]) => failures[c]).map(([c, what]) => `${failures[c]} ${what}`);
    process.stderr.write(`immudb-audit: ${verified} of ${ids.length} audit ids verified; ${counts.join(', ')} (exit ${worst})\n`);
  }
  return worst;
}

const iso = (ms: number | undefined) => (ms === undefined ? '?' : new Date(ms).toISOString().replace('.000Z', 'Z'));

/** `verify --all`: a range of transactions, by checkpoint, --from-tx or time; nothing verified is exit 1. */
async function verifyAllCommand(o: GlobalOptions, ids: string[], cmd: VerifyOptions): Promise<void> {
  if (ids.length) throw new InvalidArgumentError('give either audit ids or --all, not both');
  if (cmd.since !== undefined && cmd.fromTx !== undefined) throw new InvalidArgumentError('give --since or --from-tx, not both');
  if (cmd.since !== undefined && cmd.until !== undefined && cmd.since >= cmd.until) throw new InvalidArgumentError('--since must be before --until');
  const progress = createProgress({ label: 'verify --all', json: o.json });
  let done = 0;
  let found = 0;
  // The checkpoint's note and signatures are checked before the walk; its extension after it.
  const checkpointCheck = openCheckpoint(cmd, serverPublicKey(o));
  const { r, cov, anyEntry, checkpoint } = await withReader(o, async (reader) => {
    try {
      // With the coverage of the verified range (gaps per node, silent periods).
      const { result: r, coverage: cov } = await verifyAllCovered(reader, {
        ...(cmd.fromTx !== undefined ? { fromTx: cmd.fromTx } : {}),
        ...(cmd.since !== undefined ? { since: cmd.since } : {}),
        ...(cmd.until !== undefined ? { until: cmd.until } : {}),
        onRange: (range) => progress.total(range.transactions),
        onTx: (_tx, entries) => progress.update(++done, (found += entries)),
      });
      const anyEntry = r.entries ? true : await reader.anyAuditEntry();
      const checkpoint = await checkpointCheck?.prove(reader);
      return { r, cov, anyEntry, checkpoint };
    } finally {
      progress.finish();
    }
  }, { warnFirstContact: true });
  const problem = nothingVerified(o, r, cmd, anyEntry);
  const timed = cmd.since !== undefined || cmd.until !== undefined;
  const window = timed ? ` in ${cmd.since !== undefined ? iso(cmd.since) : 'the beginning'} .. ${cmd.until !== undefined ? iso(cmd.until) : 'now'}` : '';
  const lines: string[] = [];
  if (r.walkedFrom !== undefined) {
    lines.push(
      r.transactions
        ? `verified: transactions ${r.fromTx}..${r.toTx} of ${r.database}${window} on server ${r.serverUuid} (${r.transactions} transaction${r.transactions === 1 ? '' : 's'}, ${r.entries} audit entr${r.entries === 1 ? 'y' : 'ies'}, committed ${iso(r.firstTime)} .. ${iso(r.lastTime)}); trusted now: tx ${r.trustedTxId}`
        : `verified: transactions ${r.walkedFrom}..${r.walkedTo} of ${r.database} on server ${r.serverUuid}; trusted now: tx ${r.trustedTxId}`,
    );
    if (timed && r.transactions) {
      const before = r.walkedFrom < r.fromTx ? `tx ${r.walkedFrom} before it` : 'the first transaction of the log';
      const after = r.walkedTo! > r.toTx ? `tx ${r.walkedTo} after it` : `the server's current tx ${r.currentTx}`;
      lines.push(`  bounded by ${before} and ${after}: their verified commit times leave no other transaction in the time range`);
    }
    if (r.checkpoint < r.walkedTo!) lines.push(`  checkpoint unchanged (tx ${r.checkpoint}): this range does not continue the audited history`);
  }
  if (checkpoint) lines.push(...checkpoint.lines);
  if (r.firstContact) lines.push(o.trustAnchor ? `  first contact: pinned by the trust anchor tx ${o.trustAnchor.txId}` : '  first contact: no state was trusted before, nothing anchors this history before now');
  const covText = coverageText(cov);
  if (covText) lines.push(covText.replace(/^\n/, ''));
  const machine = {
    verified: r.walkedFrom !== undefined, first_contact: r.firstContact, server_uuid: r.serverUuid, database: r.database,
    from_tx: r.fromTx, to_tx: r.toTx, transactions: r.transactions, entries: r.entries, trusted_tx: r.trustedTxId, current_tx: r.currentTx,
    checkpoint: r.checkpoint, walked_from_tx: r.walkedFrom ?? null, walked_to_tx: r.walkedTo ?? null,
    first_time: r.firstTime !== undefined ? iso(r.firstTime) : null, last_time: r.lastTime !== undefined ? iso(r.lastTime) : null,
    since: cmd.since !== undefined ? iso(cmd.since) : null, until: cmd.until !== undefined ? iso(cmd.until) : null,
    problem: problem ?? null,
    ...checkpoint?.json,
    ...coverageJson(cov),
  };
  if (o.json) print(o, '', machine);
  else if (lines.length) process.stdout.write(lines.join('\n') + '\n');
  if (checkpoint?.warning) process.stderr.write(`immudb-audit: WARNING: ${checkpoint.warning}\n`);
  if (problem) {
    process.stderr.write(`immudb-audit: ${problem}\n`);
    process.exitCode = EXIT.notFound;
  }
  // Verified, but records a node numbered are missing: worse than nothing verified.
  if (cov.gaps.length) process.exitCode = COVERAGE_GAP_EXIT;
}

/** Why a `verify --all` verified no audit entry (undefined: it did), saying what was verified. */
function nothingVerified(o: GlobalOptions, r: VerifyAllResult, cmd: VerifyOptions, anyEntry: boolean): string | undefined {
  const chain = r.walkedFrom !== undefined ? ` (the chain of tx ${r.walkedFrom}..${r.walkedTo} was verified)` : '';
  const nowhere = anyEntry ? '' : `; there is no audit entry under prefix "${o.prefix}" in database ${r.database} at all (is --prefix the plugin's key_prefix?)`;
  if (r.currentTx === 0) return `nothing to verify: database ${r.database} has no transactions${nowhere}`;
  if (r.walkedFrom === undefined) {
    const start = cmd.fromTx !== undefined ? `--from-tx ${cmd.fromTx}` : `tx ${r.fromTx}, after the checkpoint (audited up to tx ${r.checkpoint})`;
    if (cmd.fromTx !== undefined && cmd.fromTx > r.currentTx) return `nothing verified: --from-tx ${cmd.fromTx} is past the end of ${r.database} (tx ${r.currentTx})`;
    if (cmd.until === undefined) return `nothing new to verify: ${r.database} is at tx ${r.currentTx}, audited up to tx ${r.checkpoint}; no audit entry was written since the last audit`;
    return `nothing verified: the range starts at ${start}, past the last transaction before ${iso(cmd.until)} (tx ${r.toTx}); give --since for an earlier range`;
  }
  if (!r.transactions) {
    const last = r.lastTxTime !== undefined ? `; the last, tx ${r.currentTx}, was committed at ${iso(r.lastTxTime)}` : '';
    if (cmd.since !== undefined && r.fromTx > r.currentTx) return `nothing verified: no transaction of ${r.database} was committed at or after ${iso(cmd.since)}${last}${chain}`;
    return `nothing verified: no transaction of ${r.database} was committed in ${cmd.since !== undefined ? iso(cmd.since) : 'the beginning'} .. ${cmd.until !== undefined ? iso(cmd.until) : 'now'}${chain}`;
  }
  if (!r.entries) return `verified transactions ${r.fromTx}..${r.toTx} hold no audit entry under prefix "${o.prefix}"${nowhere}`;
  return undefined;
}

program
  .command('find')
  .description("the entries of a trace: candidates from the trace index (for a trace the plugin started itself, from this auditor's index, brought up to date first), kept only when the entry's own trace_id is the trace (exit 3 with --verify, else 1, when the index lists others)")
  .requiredOption('--trace <trace-id>', 'W3C trace id (32 hex characters)')
  .option('--verify', 'verified reads of the entries found (exit 3 if any check fails)')
  .action(async (cmd: { trace: string; verify?: boolean }) => {
    const o = program.opts<GlobalOptions>();
    const verify = Boolean(cmd.verify);
    await withReader(o, async (reader) => {
      const r = await findTrace(reader, cmd.trace, o.prefix, verify, (t) => traceIdsFromIndex(reader, o, t));
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
  .option('--metrics-url <url>', 'base URL of the metrics endpoint', usage((v) => new URL(v).href), `http://127.0.0.1:${process.env.IMMUDB_AUDIT_METRICS_PORT ?? '9542'}`)
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
      { addresses: all, log: logName(o), serverPublicKey: serverPublicKey(o) },
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
    serverPublicKey: serverPublicKey(o) ?? null,
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
  withReader: (fn) => withReader(program.opts<GlobalOptions>(), fn, { warnFirstContact: true }),
  productVersion: Version,
});
registerServe(program, {
  globals: () => program.opts<GlobalOptions>(),
  withReader: (fn) => withReader(program.opts<GlobalOptions>(), fn),
  productVersion: Version,
  serverPublicKey: () => program.opts<GlobalOptions>().serverPublicKey,
});

registerEvidence(program, {
  globals: () => program.opts<GlobalOptions>(),
  withReader: (fn) => withReader(program.opts<GlobalOptions>(), fn),
  productVersion: Version,
  serverPublicKey: () => {
    const f = program.opts<GlobalOptions>().serverPublicKey;
    return f ? readFileSync(f, 'utf8') : undefined;
  },
});

program.parseAsync(process.argv).catch((err: unknown) => {
  if (isBrokenPipe(err)) process.exit(process.exitCode ?? 0);
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
