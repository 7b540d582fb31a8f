// What the durability and crash tests check after a fault: every acknowledged request is in
// immudb exactly once and the whole history verifies with the auditor's CLI.
import type { ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFixture, SCENARIO_KINDS, type LogFixture } from '../fixtures/serialized-logs.js';
import { scanAll, type AuditStack } from './audit-stack.js';
import type { ImmudbClient } from '../../plugin/store/immudb-client.js';
import type { Entry } from '../../plugin/store/immudb-types.js';
import { cliTarget, runCli } from './cli.js';

export const fixture = (i: number): LogFixture => buildFixture(SCENARIO_KINDS[i % SCENARIO_KINDS.length]!, 100_000 + i);

/** Polls `cond` until it holds or `timeoutMs` passed (the caller's assertions say what failed). */
export async function until(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

export interface ExactlyOnce {
  /** Every entry stored under the prefix. */
  stored: Entry[];
  /** Acknowledged request ids not (yet) in immudb. */
  missing: string[];
  /** Request ids stored more than once, with their count. */
  dupes: Array<[string, number]>;
}

/** request id -> how many times it is among `entries` (audit entries as stored). */
export function requestIdCounts(entries: readonly Entry[]): Map<string, number> {
  const seen = new Map<string, number>();
  for (const e of entries) {
    const rid = (JSON.parse(e.value.toString()) as { request_id: string }).request_id;
    seen.set(rid, (seen.get(rid) ?? 0) + 1);
  }
  return seen;
}

/** The sent request ids not among `entries`, and those among them more than once. */
export function onceEach(sent: Iterable<string>, entries: readonly Entry[]): Pick<ExactlyOnce, 'missing' | 'dupes'> {
  const seen = requestIdCounts(entries);
  return { missing: [...sent].filter((r) => !seen.has(r)), dupes: [...seen].filter(([, n]) => n > 1) };
}

/**
 * Waits (up to timeoutMs) for every request id to be stored under `<prefix>:entry:` and says
 * which are missing and which are stored twice. Waits for the ids themselves, not a count:
 * entries written but not acknowledged before a kill are stored too, so the count can be
 * reached while acknowledged ones are still queued.
 */
export async function checkExactlyOnce(client: ImmudbClient, prefix: string, requestIds: Set<string>, timeoutMs = 180_000): Promise<ExactlyOnce> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const stored = await scanAll(client, `${prefix}:entry:`);
    const { missing, dupes } = onceEach(requestIds, stored);
    if (!missing.length || Date.now() > deadline) return { stored, missing, dupes };
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Every request id once, and nothing else. */
export async function expectExactlyOnce(t: ExecutionContext, stack: AuditStack, db: string, prefix: string, requestIds: Set<string>) {
  const { stored, missing, dupes } = await checkExactlyOnce(await stack.client(db), prefix, requestIds);
  if (missing.length) t.log(`plugin server log (end):\n${stack.server.logs().slice(-6000)}`);
  t.deepEqual(missing, [], 'every acknowledged request is in immudb');
  t.deepEqual(dupes, [], 'no request is in immudb twice');
  return stored.length;
}

export async function verifyAll(t: ExecutionContext, stack: AuditStack, db: string, prefix: string): Promise<{ entries: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'kia-auditor-'));
  try {
    const r = await runCli([...cliTarget(stack.immudb, db, prefix, dir), '--json', 'verify', '--all'], { IMMUDB_PASSWORD: stack.immudb.password });
    t.is(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { entries: number };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
