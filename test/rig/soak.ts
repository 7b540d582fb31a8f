// The soak: model-based schedules and crash rounds, again and again with fresh seeds, for N
// seconds; then a report. Exits 1 when any acknowledged entry was lost silently or anything
// unproven was accepted (or a schedule broke the invariant), 0 otherwise. It stops by itself:
// no new work starts after N seconds, and a hard stop ends it N + 300 s after the start.
//   npm run soak -- --seconds 300
import { newTally, runModel, startRigEnv, type Tally } from './pipeline-model.js';
import { runCrashRounds } from './crash-rounds.js';

function argSeconds(argv: string[]): number {
  const i = argv.indexOf('--seconds');
  const v = i >= 0 ? Number(argv[i + 1]) : 60;
  if (!Number.isFinite(v) || v <= 0) throw new Error('usage: soak --seconds N (N > 0)');
  return v;
}

const seconds = argSeconds(process.argv.slice(2));
const started = Date.now();
const deadline = started + seconds * 1000;
const hardStop = setTimeout(() => {
  console.error(`soak: still running ${seconds + 300} s after the start; stopping (something hangs)`);
  process.exit(2);
}, (seconds + 300) * 1000);
hardStop.unref();

const tally: Tally = newTally();
const crash = { runs: 0, kills: 0, acked: 0, inFlight: 0, lost: 0, lostRecorded: 0, dupes: 0, unknown: 0 };
const failures: string[] = [];
const freshSeed = () => Math.floor(Math.random() * 2 ** 31);

const env = await startRigEnv(tally);
try {
  for (let turn = 0; Date.now() < deadline; turn++) {
    if (turn % 2 === 0) {
      const seed = freshSeed();
      try {
        await runModel(env, { numRuns: 5, maxCommands: 30, seed, timeLimitMs: Math.max(1_000, deadline - Date.now()) });
      } catch (e) {
        failures.push(`model schedules, KIA_FC_SEED=${seed}: ${(e as Error).message}`);
      }
    } else {
      const seed = freshSeed();
      const r = await runCrashRounds({ seed, rounds: 3 }).catch((e: unknown) => {
        failures.push(`crash rounds, KIA_CRASH_SEED=${seed}: ${(e as Error).message}`);
        return undefined;
      });
      if (!r) continue;
      crash.runs++;
      crash.kills += r.kills.length;
      crash.acked += r.acked;
      crash.inFlight += r.inFlight;
      crash.lost += r.lost.length;
      crash.lostRecorded += r.lossRecorded;
      crash.dupes += r.dupes.length;
      crash.unknown += r.unknown.length;
      // Missing entries the plugin recorded in loss records are "lost, recorded", not silent.
      if (r.lost.length > r.lossRecorded || r.dupes.length || r.unknown.length) {
        failures.push(`crash rounds, KIA_CRASH_SEED=${seed}: lost ${r.lost.length}, stored twice ${r.dupes.length}, never sent ${r.unknown.length}\n${r.serverLog ?? ''}`);
      }
    }
  }
} finally {
  await env.dispose();
}

const faults: Record<string, number> = { ...tally.faults, sigkill: crash.kills };
const lost = tally.lost + Math.max(0, crash.lost - crash.lostRecorded);
console.log(`soak: ${((Date.now() - started) / 1000).toFixed(0)} s`);
console.log(`schedules run: ${tally.schedules} model schedules, ${crash.runs} crash runs (${crash.kills} rounds)`);
console.log(`faults injected: ${Object.entries(faults).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`);
console.log(`entries acknowledged: ${tally.acked + crash.acked} (model ${tally.acked}, crash ${crash.acked}); in flight at crashes ${tally.inFlightAtCrash + crash.inFlight}; held in the spool at the end ${tally.stillSpooled}`);
console.log(`lost: ${lost}`);
console.log(`lost, recorded: ${tally.lostRecorded + crash.lostRecorded}`);
console.log(`accepted unproven: ${tally.acceptedUnproven}`);
console.log(`stored twice: ${crash.dupes}; stored but never sent: ${crash.unknown}`);
for (const f of failures) console.log(`FAILED ${f}`);
const bad = lost > 0 || tally.acceptedUnproven > 0 || crash.dupes > 0 || crash.unknown > 0 || failures.length > 0;
console.log(bad ? 'soak: FAILED' : 'soak: ok');
process.exit(bad ? 1 : 0);
