// Model-based test of the pipeline (see test/rig/pipeline-model.ts for the commands and the
// invariant). Replay a failure with KIA_FC_SEED=<seed> (and KIA_FC_PATH=<path> to go straight
// to the shrunk case), both printed in the failure message; KIA_FC_RUNS sets the schedules.
import test from 'ava';
import { modelSeed, runModel, startRigEnv, type RigEnv } from '../rig/pipeline-model.js';

let env: RigEnv;
test.before(async () => {
  env = await startRigEnv();
});
test.after.always(async () => {
  await env?.dispose();
});

test('random schedules of appends, crashes, restarts, outages, write faults and queue changes keep every acknowledged entry proven once or spooled', async (t) => {
  t.timeout(10 * 60_000, 'schedules and, on a failure, shrinking');
  const { seed, path } = modelSeed();
  t.log(`fast-check seed ${seed}${path ? ` path ${path}` : ''} (replay: KIA_FC_SEED=${seed})`);
  await runModel(env, { numRuns: Number(process.env.KIA_FC_RUNS ?? 8), maxCommands: 20, timeLimitMs: 6 * 60_000, seed, ...(path ? { path } : {}) });
  const s = env.tally;
  t.log(`${s.schedules} schedules; commands ${JSON.stringify(s.commands)}; faults ${JSON.stringify(s.faults)}; ${s.acked} acknowledged, ${s.lostRecorded} lost and recorded, ${s.inFlightAtCrash} in flight at crashes, ${s.stillSpooled} held in the spool at the end`);
  t.is(s.lost, 0);
  t.is(s.acceptedUnproven, 0);
});
