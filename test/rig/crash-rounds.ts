// Crash rounds: the real plugin server under load, SIGKILLed at random points drawn from a
// seeded PRNG, restarted on the same data directory, and at the end drained and checked: every
// log event whose RPC returned (Kong was told it completed) is in immudb exactly once, and
// nothing appears that was never sent. Shared by test/integration/crash-points.test.ts and the
// soak runner (test/rig/soak.ts).
//
// Each round picks a load profile, so the kill lands mostly during appends (long coalescing:
// the spool fills, few writes), during batch writes, acks and trusted-state saves (batches of
// 1-4 written back to back: each one a VerifiableSet, a trusted-state save, an ack), or a mix;
// later rounds also kill during the replay of what the previous run left in the spool.
import { simulateWorkers, type KongInstance } from '../helpers/kong-driver.js';
import { PLUGIN_NAME, scanAll, startAuditStack, type AuditStack } from '../helpers/audit-stack.js';
import { checkExactlyOnce, fixture, until } from '../helpers/exactly-once.js';
import { createRng, type Rng } from '../fixtures/serialized-logs.js';

export type CrashProfile = 'appends' | 'writes' | 'mixed';

export interface CrashRoundsOptions {
  seed: number;
  rounds: number;
  /** Concurrent log events (Kong timers) per round. */
  concurrency?: number;
  /** Longest random delay between the round's first acknowledgements and the kill, ms. */
  maxKillDelayMs?: number;
  /** First fixture index: distinct ranges keep request ids distinct across runs on one stack. */
  fixtureBase?: number;
  log?: (line: string) => void;
}

export interface CrashRoundsResult {
  seed: number;
  kills: Array<{ round: number; profile: CrashProfile; delayMs: number; ackedInRound: number }>;
  /** Events whose RPC returned before a kill or after the last restart. */
  acked: number;
  /** Events sent whose RPC did not return (in flight at a kill): may or may not be stored. */
  inFlight: number;
  stored: number;
  /** Acknowledged and not in immudb after the drain. */
  lost: string[];
  /** Entries the product recorded as lost (loss records' entries_lost): reported, not hidden. */
  lossRecorded: number;
  /** Stored more than once. */
  dupes: Array<[string, number]>;
  /** Stored but never sent (must be empty). */
  unknown: string[];
  /** The plugin server's log when something was wrong (for the failure message). */
  serverLog?: string;
}

function queueFor(profile: CrashProfile, rng: Rng): Record<string, number> {
  switch (profile) {
    case 'appends': return { max_batch_size: 512, max_coalescing_delay: 1 };
    case 'writes': return { max_batch_size: rng.int(1, 4), max_coalescing_delay: 0 };
    case 'mixed': return { max_batch_size: rng.pick([16, 64]), max_coalescing_delay: 0.02 };
  }
}

export async function runCrashRounds(opts: CrashRoundsOptions): Promise<CrashRoundsResult> {
  const rng = createRng(opts.seed, 0xc4a5);
  const log = opts.log ?? (() => undefined);
  const concurrency = opts.concurrency ?? 8;
  const maxDelay = opts.maxKillDelayMs ?? 800;
  const db = 'crash';
  const prefix = 'c';
  const stack: AuditStack = await startAuditStack();
  const sent = new Set<string>();
  const acked = new Set<string>();
  const kills: CrashRoundsResult['kills'] = [];
  let next = opts.fixtureBase ?? 2_000_000;
  const config = (queue: Record<string, number>) => stack.config({ immudb_database: db, create_database: true, key_prefix: prefix, queue });
  try {
    for (let round = 1; round <= opts.rounds; round++) {
      const profile = rng.pick<CrashProfile>(['appends', 'writes', 'mixed']);
      const queue = queueFor(profile, rng);
      // A fresh server process per round: its first StartInstance decides the queue settings.
      const workers: KongInstance[] = await simulateWorkers(stack.rpc, 2, PLUGIN_NAME, config(queue));
      let killed = false;
      let ackedInRound = 0;
      const load = Promise.all(Array.from({ length: concurrency }, async () => {
        while (!killed) {
          const f = fixture(next++);
          sent.add(f.expected.requestId);
          const r = await workers[next % 2]!.runLogEvent({ 'kong.log.serialize': f.json }).catch(() => undefined);
          if (r?.completed) {
            acked.add(f.expected.requestId);
            ackedInRound++;
          }
        }
      }));
      // Kill at a random point once the round is under way (a loaded machine takes longer to
      // get there; the delay after that is what the seed decides).
      await until(() => ackedInRound >= 20, 60_000);
      const delayMs = rng.int(0, maxDelay);
      await new Promise((r) => setTimeout(r, delayMs));
      killed = true;
      await stack.server.kill();
      await load;
      kills.push({ round, profile, delayMs, ackedInRound });
      log(`round ${round}: ${profile} ${JSON.stringify(queue)}, killed ${delayMs} ms after 20 acks, ${ackedInRound} acknowledged in the round`);
      await stack.server.restart();
    }
    // The last restart: a few events start the instance, which replays the spool.
    const workers = await simulateWorkers(stack.rpc, 2, PLUGIN_NAME, config({ max_batch_size: 64, max_coalescing_delay: 0.02 }));
    for (let j = 0; j < 4; j++) {
      const f = fixture(next++);
      sent.add(f.expected.requestId);
      const r = await workers[j % 2]!.runLogEvent({ 'kong.log.serialize': f.json });
      if (r.completed) acked.add(f.expected.requestId);
    }
    const client = await stack.client(db);
    const check = await checkExactlyOnce(client, prefix, acked, 90_000);
    // Entries in flight at a kill may land after the acknowledged ones: let the spool drain
    // completely before listing what is stored.
    let stored = check.stored;
    for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 500));
      const again = await scanAll(client, `${prefix}:entry:`);
      if (again.length === stored.length) break;
      stored = again;
    }
    const lossRecords = await scanAll(client, `${prefix}:loss:`);
    const lossRecorded = lossRecords.reduce((n, e) => n + Number((JSON.parse(e.value.toString()) as { entries_lost?: number }).entries_lost ?? 0), 0);
    const ids = stored.map((s) => (JSON.parse(s.value.toString()) as { request_id: string }).request_id);
    const counts = new Map<string, number>();
    for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
    const result: CrashRoundsResult = {
      seed: opts.seed,
      kills,
      acked: acked.size,
      inFlight: sent.size - acked.size,
      stored: stored.length,
      lost: check.missing,
      lossRecorded,
      dupes: [...counts].filter(([, n]) => n > 1),
      unknown: [...counts.keys()].filter((id) => !sent.has(id)),
    };
    if (result.lost.length || result.dupes.length || result.unknown.length) result.serverLog = stack.server.logs().slice(-6000);
    return result;
  } finally {
    await stack.dispose();
  }
}

/** A seed from KIA_CRASH_SEED (to replay a run) or a fresh one. */
export function crashSeed(): number {
  const fromEnv = process.env.KIA_CRASH_SEED;
  return fromEnv ? Number(fromEnv) : Math.floor(Math.random() * 2 ** 31);
}
