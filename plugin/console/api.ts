// The console's JSON API (all GET, read-only): the answers of the CLI's own code paths. Search
// and timeline go through the workbench's index (brought up to date by a verified walk first,
// as `search` does); an entry is read with AuditReader.verify, as `verify <id>` does.
import { NotFoundError, type AuditReader } from '../reader/audit-reader.js';
import { VerificationError } from '../store/proofs/index.js';
import { conditionOf, withIndex, type KeyOptions, type WorkbenchContext } from '../workbench/commands.js';
import { FilterError } from '../workbench/filters.js';
import { rowJson, stateJson } from '../workbench/formats.js';
import { afterCursor, cursorOf, cursorText, filtersOf, limitOf } from './query-params.js';
import { timeline } from './timeline.js';
import { traceUrl } from './trace-url.js';
import { InvalidArgumentError } from 'commander';
import { collectBundle } from '../evidence/collect.js';
import { parseBundle, verifyBundle } from '../evidence/bundle-verify.js';

export interface ConsoleContext extends WorkbenchContext {
  /** Whether --server-public-key is set: proven states must then carry the server's signature. */
  signatureChecked: boolean;
  /** Its PEM, pinned in evidence bundles. */
  serverPublicKeyPem?: string;
  traceTemplate?: string;
  statusUrl?: string;
  keyOptions: KeyOptions;
}

export interface ApiAnswer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** Rows per page unless `limit` says otherwise, and the most a page may hold. */
export const PAGE_ROWS = 50;
export const MAX_PAGE_ROWS = 1000;

const bad = (message: string): ApiAnswer => ({ status: 400, body: { error: message } });

/** One request at a time: each opens a reader and may update the index (one writer). */
let queue: Promise<unknown> = Promise.resolve();
function serially<T>(fn: () => Promise<T>): Promise<T> {
  const run = queue.then(fn, fn);
  queue = run.catch(() => undefined);
  return run;
}

/** Errors as answers: a usage error 400, not found 404, a failed check 409 (verified: false). */
async function answering(fn: () => Promise<ApiAnswer>): Promise<ApiAnswer> {
  try {
    return await serially(fn);
  } catch (e) {
    const err = e as Error;
    if (e instanceof FilterError || e instanceof InvalidArgumentError || /^not an? (audit|trace) id/.test(err.message)) return bad(err.message);
    if (e instanceof NotFoundError) return { status: 404, body: { error: err.message } };
    if (e instanceof VerificationError) return { status: 409, body: { verified: false, error: `VERIFICATION FAILED: ${err.message}` } };
    return { status: 502, body: { error: err.message } };
  }
}

function conditionFor(ctx: ConsoleContext, q: URLSearchParams) {
  const filters = filtersOf(q);
  return { filters, cond: conditionOf({ ...filters, ...ctx.keyOptions }) };
}

export function search(ctx: ConsoleContext, q: URLSearchParams): Promise<ApiAnswer> {
  return answering(async () => {
    const { cond } = conditionFor(ctx, q);
    const limit = limitOf(q, PAGE_ROWS, MAX_PAGE_ROWS);
    const cursor = cursorOf(q);
    return withIndex(ctx, async (index, state) => {
      const rows = [...index.query(afterCursor(cond, cursor), limit + 1)];
      const more = rows.length > limit;
      if (more) rows.pop();
      const last = rows[rows.length - 1] as (typeof rows)[number] & { rowid: number } | undefined;
      return {
        status: 200,
        body: {
          state: stateJson(state),
          // Counted on the first page only (the cursor's pages keep the count they started with).
          matched: cursor ? null : more ? index.count(cond) : rows.length,
          rows: rows.map((r) => {
            const { entry: _entry, ...fields } = rowJson(r);
            return fields;
          }),
          next: more && last ? cursorText({ time: last.time, rowid: last.rowid }) : null,
        },
      };
    });
  });
}

export function timelineOf(ctx: ConsoleContext, q: URLSearchParams): Promise<ApiAnswer> {
  return answering(async () => {
    const { filters, cond } = conditionFor(ctx, q);
    return withIndex(ctx, async (index, state) => ({
      status: 200,
      body: { state: stateJson(state), ...timeline(index, cond, { since: filters.since, until: filters.until }) },
    }));
  });
}

/** Every leaf of an entry as [dotted path, JSON value], in the entry's order. */
export function fieldsOf(value: unknown, path = ''): Array<[string, string]> {
  if (value !== null && typeof value === 'object' && (Array.isArray(value) ? value.length : Object.keys(value).length)) {
    return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => fieldsOf(v, path ? `${path}.${k}` : k));
  }
  return [[path, typeof value === 'string' ? value : JSON.stringify(value)]];
}

async function verified(ctx: ConsoleContext, id: string) {
  const g = ctx.globals();
  const r = await ctx.withReader((reader: AuditReader) => reader.verify(id));
  const entry = r.entry as { trace_id?: unknown } | null;
  return {
    verified: true,
    audit_id: r.key.slice(r.key.lastIndexOf(':') + 1),
    key: r.key,
    tx: r.txId,
    server_uuid: r.serverUuid,
    database: g.database,
    prefix: g.prefix,
    verified_at: new Date().toISOString(),
    proof: {
      inclusion: `the entry's key and value are included in tx ${r.txId} (Merkle inclusion proof checked)`,
      consistency: r.trustedBefore
        ? `tx ${r.trustedAfter.txId} is consistent with the state this auditor trusted before (tx ${r.trustedBefore.txId})`
        : `first contact: nothing was trusted before for this server; its current history (tx ${r.trustedAfter.txId}) is now trusted`,
      signature: ctx.signatureChecked ? "the proven state is signed by the server's key (--server-public-key)" : 'not checked: no --server-public-key given',
      first_contact: !r.trustedBefore,
      trusted_before: r.trustedBefore ?? null,
      trusted_after: r.trustedAfter,
    },
    trace_url: traceUrl(ctx.traceTemplate, entry?.trace_id),
    entry: r.entry,
    /** The verified value as stored (UTF-8). */
    value: r.value.toString('utf8'),
  };
}

export function entry(ctx: ConsoleContext, q: URLSearchParams): Promise<ApiAnswer> {
  return answering(async () => {
    const id = q.get('id');
    if (!id) return bad('id: expected an audit id');
    const v = await verified(ctx, id);
    return { status: 200, body: { ...v, fields: fieldsOf(v.entry) } };
  });
}

/**
 * The entry's evidence bundle (docs/evidence-bundle.md), as `immudb-audit bundle <id>` writes it:
 * checked offline once more before it is sent, so that what is downloaded passes verify-bundle.
 */
export function bundle(ctx: ConsoleContext, q: URLSearchParams): Promise<ApiAnswer> {
  return answering(async () => {
    const id = q.get('id');
    if (!id) return bad('id: expected an audit id');
    const g = ctx.globals();
    const b = await ctx.withReader((reader: AuditReader) =>
      collectBundle(reader, { ids: [id], prefix: g.prefix, serverPublicKey: ctx.serverPublicKeyPem, createdBy: `kong-immudb-audit ${ctx.productVersion}` }),
    );
    verifyBundle(parseBundle(JSON.stringify(b)), { publicKeyPem: ctx.serverPublicKeyPem });
    return {
      status: 200,
      body: b,
      headers: { 'Content-Disposition': `attachment; filename="audit-${b.entries[0]!.audit_id}.bundle.json"` },
    };
  });
}

/** The writers' state from the plugin server's /status (fetched here: the page talks to us only). */
export async function status(ctx: ConsoleContext): Promise<ApiAnswer> {
  if (!ctx.statusUrl) return { status: 200, body: { configured: false } };
  try {
    const res = await fetch(ctx.statusUrl, { signal: AbortSignal.timeout(5_000), redirect: 'error' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return { status: 200, body: { configured: true, url: ctx.statusUrl, ok: true, status: (await res.json()) as unknown } };
  } catch (e) {
    return { status: 200, body: { configured: true, url: ctx.statusUrl, ok: false, error: `cannot read ${ctx.statusUrl}: ${(e as Error).message}` } };
  }
}
