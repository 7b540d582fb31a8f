// SIGKILL of the plugin server at seeded random points under load (during appends, batch
// writes, acks, trusted-state saves and replays), restart on the same data directory, drain:
// every event Kong was told completed is in immudb exactly once, and nothing else appears.
// Replay a failing run with KIA_CRASH_SEED=<seed> (printed in the failure message).
import test from 'ava';
import { crashSeed, runCrashRounds } from '../rig/crash-rounds.js';

test('SIGKILL at seeded random points under load: every acknowledged entry lands exactly once, nothing else', async (t) => {
  t.timeout(6 * 60_000, 'rounds, then up to 90 s for the drain, on a loaded machine');
  const seed = crashSeed();
  const rounds = Number(process.env.KIA_CRASH_ROUNDS ?? 4);
  const r = await runCrashRounds({ seed, rounds, log: (l) => t.log(l) });
  const replay = `replay with KIA_CRASH_SEED=${seed}`;
  t.log(`seed ${seed}: ${r.acked} acknowledged, ${r.inFlight} in flight at kills, ${r.stored} stored`);
  if (r.serverLog) t.log(`plugin server log (end):\n${r.serverLog}`);
  t.is(r.kills.length, rounds, replay);
  t.is(r.lossRecorded, 0, `the plugin recorded losses (its disk is fine here); ${replay}`);
  t.deepEqual(r.lost, [], `acknowledged entries missing from immudb; ${replay}`);
  t.deepEqual(r.dupes, [], `entries stored twice; ${replay}`);
  t.deepEqual(r.unknown, [], `entries stored that were never sent; ${replay}`);
  t.true(r.stored >= r.acked, replay);
});
