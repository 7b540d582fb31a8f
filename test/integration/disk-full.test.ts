// A full disk under the spool, through the real plugin server and a real immudb (issue 13,
// finding 3): the spool on a 2 MiB tmpfs, immudb down, the disk filled while events keep coming,
// space freed, the plugin server killed (SIGKILL) and stopped (SIGTERM) while immudb is still
// down, then immudb back. Every entry whose log() returned is in immudb exactly once, or counted
// in a loss record. Needs permission to mount a tmpfs (root here); skipped with a message
// elsewhere.
import test, { type ExecutionContext } from 'ava';
import { readdirSync, statSync, statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { simulateWorkers, type KongInstance } from '../helpers/kong-driver.js';
import { buildFixture, SCENARIO_KINDS } from '../fixtures/serialized-logs.js';
import { tmpfsFor } from '../helpers/tmpfs.js';
import { PLUGIN_NAME, scanAll, startAuditStack, type AuditStack } from '../helpers/audit-stack.js';

/** Every acknowledged request id is in immudb exactly once, or counted in a loss record. */
async function everyAckedStoredOrCounted(t: ExecutionContext, stack: AuditStack, db: string, prefix: string, acked: Set<string>) {
  const client = await stack.client(db);
  const deadline = Date.now() + 120_000;
  let stored: Map<string, number>;
  let lost = 0;
  let missing: string[];
  let losses: Array<{ entries_lost: number; reason: string; node: string }>;
  for (;;) {
    stored = new Map();
    for (const e of await scanAll(client, `${prefix}:entry:`)) {
      const rid = (JSON.parse(e.value.toString()) as { request_id: string }).request_id;
      stored.set(rid, (stored.get(rid) ?? 0) + 1);
    }
    losses = (await scanAll(client, `${prefix}:loss:`)).map((e) => JSON.parse(e.value.toString()) as { entries_lost: number; reason: string; node: string });
    lost = losses.reduce((n, l) => n + l.entries_lost, 0);
    missing = [...acked].filter((r) => !stored.has(r));
    if ((losses.length && missing.length <= lost) || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  t.log(`loss records: ${JSON.stringify(losses)}`);
  t.log(`${acked.size} acknowledged, ${acked.size - missing.length} stored, ${missing.length} not stored, ${lost} counted lost in loss records`);
  t.true(lost > 0, 'the test did lose entries (the disk and immudb both failed with memory full)');
  t.true(missing.length <= lost, `${missing.length} acknowledged entries missing, only ${lost} counted lost`);
  t.deepEqual([...stored].filter(([, n]) => n > 1), [], 'no entry twice');
  return losses;
}

const fixture = (i: number) => buildFixture(SCENARIO_KINDS[i % SCENARIO_KINDS.length]!, 3_000_000 + i);

test.serial('disk full, immudb down, restarts: every acknowledged entry lands once or is counted in a loss record', async (t) => {
  const mnt = tmpfsFor(t, '2m');
  if (!mnt) return;
  const stack = await startAuditStack();
  t.teardown(() => stack.dispose());
  const config = stack.config({
    immudb_database: 'diskfull', create_database: true, key_prefix: 'f', spool_dir: join(mnt, 'spool'),
    queue: { max_entries: 40, max_batch_size: 16, max_coalescing_delay: 0.01, initial_retry_delay: 0.05, max_retry_delay: 0.5 },
  });
  const workers: KongInstance[] = await simulateWorkers(stack.rpc, 2, PLUGIN_NAME, config);
  /** Request ids of events whose log() returned. */
  const acked = new Set<string>();
  let next = 0;
  const send = async (k: number) => {
    const f = fixture(k);
    const r = await workers[k % 2]!.runLogEvent({ 'kong.log.serialize': f.json }).catch(() => undefined);
    if (r?.completed) acked.add(f.expected.requestId);
    return r?.completed ?? false;
  };
  // A few entries written normally, then immudb goes down.
  for (let k = 0; k < 20; k++) t.true(await send(next++));
  await stack.immudb.stop();

  // Fill the disk but ~150 KiB, then keep sending: the spool fills, the next entries are held
  // in memory (their log() waits), the ones after those are lost (counted).
  const free = () => { const s = statfsSync(mnt); return s.bavail * s.bsize; };
  const filler = join(mnt, 'filler');
  writeFileSync(filler, Buffer.alloc(Math.max(0, free() - 150 * 1024)));
  const inFlight: Promise<boolean>[] = [];
  for (let k = 0; k < 600; k++) {
    inFlight.push(send(next++));
    if (k % 20 === 19) await new Promise((r) => setTimeout(r, 20));
  }
  // Those that returned at once: spooled while there was room, or lost.
  await new Promise((r) => setTimeout(r, 2_000));
  t.regex(stack.server.logs(), /the spool cannot take entries \(spool: ENOSPC\)/);
  t.regex(stack.server.logs(), /audit entries are being LOST/);
  // Space returns: the held entries are spooled again and their log() returns.
  unlinkSync(filler);
  const returned = await Promise.all(inFlight);
  t.log(`${returned.filter(Boolean).length} of ${returned.length} events returned; ${acked.size} acknowledged so far`);
  for (let k = 0; k < 30; k++) t.true(await send(next++));

  // Restarts while immudb is still down: SIGKILL, then SIGTERM.
  await stack.server.kill();
  await stack.server.restart();
  for (let k = 0; k < 10; k++) t.true(await send(next++));
  await stack.server.restart('SIGTERM');
  for (let k = 0; k < 10; k++) t.true(await send(next++));

  await stack.immudb.restart();
  await everyAckedStoredOrCounted(t, stack, 'diskfull', 'f', acked);
  t.notRegex(stack.server.logs(), /record\(s\) missing between the acknowledged position/);
});

test.serial('killed while the disk is full and immudb down: the losses survive in the ledger, the restart opens the spool, the loss record is written', async (t) => {
  const mnt = tmpfsFor(t, '2m');
  if (!mnt) return;
  const stack = await startAuditStack();
  t.teardown(() => stack.dispose());
  const config = stack.config({
    immudb_database: 'diskfull2', create_database: true, key_prefix: 'g', spool_dir: join(mnt, 'spool'),
    queue: { max_entries: 30, max_batch_size: 16, max_coalescing_delay: 0.01, initial_retry_delay: 0.05, max_retry_delay: 0.5 },
  });
  const workers: KongInstance[] = await simulateWorkers(stack.rpc, 2, PLUGIN_NAME, config);
  const acked = new Set<string>();
  let next = 0;
  const send = async (k: number) => {
    const f = buildFixture(SCENARIO_KINDS[k % SCENARIO_KINDS.length]!, 4_000_000 + k);
    const r = await workers[k % 2]!.runLogEvent({ 'kong.log.serialize': f.json }).catch(() => undefined);
    if (r?.completed) acked.add(f.expected.requestId);
    return r?.completed ?? false;
  };
  for (let k = 0; k < 10; k++) t.true(await send(next++));
  await stack.immudb.stop();
  const free = () => { const s = statfsSync(mnt); return s.bavail * s.bsize; };
  const filler = join(mnt, 'filler');
  writeFileSync(filler, Buffer.alloc(Math.max(0, free() - 100 * 1024)));
  const inFlight: Promise<boolean>[] = [];
  for (let k = 0; k < 300; k++) {
    inFlight.push(send(next++));
    if (k % 20 === 19) await new Promise((r) => setTimeout(r, 20));
  }
  // Wait until the loss ledger has taken the last count (written at most a second after it).
  const spoolDir = join(mnt, 'spool', readdirSync(join(mnt, 'spool'))[0]!);
  const ledger = join(spoolDir, 'losses');
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && !(/LOST/.test(stack.server.logs()) && Date.now() - statSync(ledger).mtimeMs > 1_500)) await new Promise((r) => setTimeout(r, 100));
  t.regex(stack.server.logs(), /audit entries are being LOST/);
  // SIGKILL with the disk still full; the held entries' log() calls fail (never acknowledged).
  await stack.server.kill();
  const beforeKill = stack.server.logs();
  await Promise.all(inFlight);
  await stack.server.restart();
  // The restart on the full disk opens the spool and reports the losses the ledger held. On a
  // full tmpfs a small write can still fit (a failed write is cut back and frees its pages), so
  // a loss record may have been spooled before the kill: losses it stored are no longer in the
  // ledger. Losses counted but not stored at the kill (from the log) must come back.
  const sum = (re: RegExp) => [...beforeKill.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);
  const counted = sum(/(\d+) audit entries were LOST \(/g);
  const stored = sum(/stored: (\d+) audit entries lost/g);
  const openEpisode = beforeKill.lastIndexOf('audit entries are being LOST') > beforeKill.lastIndexOf('audit entries were LOST (');
  const after: Promise<boolean>[] = [];
  for (let k = 0; k < 5; k++) after.push(send(next++));
  if (openEpisode || counted > stored) {
    const deadline2 = Date.now() + 30_000;
    while (Date.now() < deadline2 && !/were LOST in a previous run/.test(stack.server.logs())) await new Promise((r) => setTimeout(r, 100));
    t.regex(stack.server.logs(), /\d+ audit entries were LOST in a previous run/);
  } else {
    t.log(`every loss counted before the kill (${counted}) was already stored in a loss record in the spool`);
    t.true(stored > 0);
  }
  unlinkSync(filler);
  await Promise.all(after);
  await stack.immudb.restart();
  const losses = await everyAckedStoredOrCounted(t, stack, 'diskfull2', 'g', acked);
  t.true(losses.some((l) => /ENOSPC/.test(l.reason)));
});
