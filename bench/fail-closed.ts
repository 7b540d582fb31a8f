// Benchmark: what the access phase of fail-closed routes costs (docs/decisions.md #32). Three
// real plugin servers on one real immudb, driven as Kong drives them:
//   (a) the plugin without the phase (IMMUDB_AUDIT_FAIL_CLOSED off, the default): a request is one
//       log event;
//   (b) the phase declared, route fail-open: a request is an access event (answered "ret" at once)
//       then its log event;
//   (c) the phase declared, route fail-closed (auditing healthy, so served): the same, the access
//       handler reading the route's gate.
// Figures per request: plugin-server CPU (whole process and the main thread that answers Kong,
// from /proc), the access event's round trip (one at a time, and under load), and (b)-(a), (c)-(a).
// Rounds rotate over the arms so the differences are taken within one run.
import type { KongInstance } from '../test/helpers/kong-driver.js';
import { serializedPool } from './lib/payloads.js';
import type { BenchContext, BenchResult } from './lib/report.js';
import { auditConfig, startBenchImmudb, startBenchServer, startWorkers, type BenchServer } from './lib/stack.js';
import { cpuMs, mainThreadCpuMs } from './lib/proc.js';
import { median, summarize } from './lib/stats.js';

const WORKERS = 2;

interface ArmSpec {
  key: string;
  label: string;
  env: NodeJS.ProcessEnv;
  config: Record<string, unknown>;
  access: boolean;
}

const ARMS: ArmSpec[] = [
  { key: 'log_only', label: '(a) no access phase (default)', env: {}, config: {}, access: false },
  { key: 'access_open', label: '(b) access phase, fail-open route', env: { IMMUDB_AUDIT_FAIL_CLOSED: 'on' }, config: {}, access: true },
  { key: 'access_closed', label: '(c) access phase, fail-closed route', env: { IMMUDB_AUDIT_FAIL_CLOSED: 'on' }, config: { fail_closed: { enabled: true } }, access: true },
];

interface Arm {
  spec: ArmSpec;
  server: BenchServer;
  workers: KongInstance[];
  requests: number;
  cpuMs: number;
  mainMs: number;
  accessLoaded: number[];
}

/** `count` requests, `concurrency` at a time: access (when the arm has it), then the log event. */
async function requests(arm: Arm, pool: readonly string[], count: number, concurrency: number, accessLat?: number[]): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const i = next++;
      const w = arm.workers[i % arm.workers.length]!;
      if (arm.spec.access) {
        const r = await w.runEvent('access');
        if (r.exit) throw new Error(`${arm.spec.key}: the route refused a request (auditing should be healthy)`);
        accessLat?.push(r.durationMs);
      }
      await w.runLogEvent({ 'kong.log.serialize': pool[i % pool.length]! });
    }
  }));
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const rounds = ctx.quick ? 3 : 5;
  const perRound = ctx.quick ? 1500 : 4000;
  const concurrency = 16;
  const seqAccess = ctx.quick ? 500 : 2000;
  const accessEvents = ctx.quick ? 5000 : 20000;
  const pool = serializedPool(500);
  const immudb = await startBenchImmudb();
  const arms: Arm[] = [];
  try {
    for (const spec of ARMS) {
      const server = await startBenchServer('audit', { env: spec.env });
      const workers = await startWorkers(server, WORKERS, auditConfig(immudb, `fc_${spec.key}`, spec.config));
      arms.push({ spec, server, workers, requests: 0, cpuMs: 0, mainMs: 0, accessLoaded: [] });
    }
    for (const arm of arms) await requests(arm, pool, ctx.quick ? 300 : 1000, concurrency); // warm-up
    const deltas: Record<string, { cpu: number[]; main: number[] }> = { access_open: { cpu: [], main: [] }, access_closed: { cpu: [], main: [] } };
    for (let round = 0; round < rounds; round++) {
      const perArm: Record<string, { cpu: number; main: number }> = {};
      // Rotate the order: whichever arm runs first in a round does not always get the idle machine.
      for (let k = 0; k < arms.length; k++) {
        const arm = arms[(round + k) % arms.length]!;
        const c0 = cpuMs(arm.server.pid);
        const m0 = mainThreadCpuMs(arm.server.pid);
        await requests(arm, pool, perRound, concurrency, arm.accessLoaded);
        const c = cpuMs(arm.server.pid) - c0;
        const m = mainThreadCpuMs(arm.server.pid) - m0;
        arm.requests += perRound;
        arm.cpuMs += c;
        arm.mainMs += m;
        perArm[arm.spec.key] = { cpu: (c * 1000) / perRound, main: (m * 1000) / perRound };
      }
      for (const key of Object.keys(deltas)) {
        deltas[key]!.cpu.push(perArm[key]!.cpu - perArm.log_only!.cpu);
        deltas[key]!.main.push(perArm[key]!.main - perArm.log_only!.main);
      }
      ctx.log(`fail-closed round ${round + 1}/${rounds}: ${JSON.stringify(perArm)}`);
    }
    // The access events alone, under the same load: the phase's own CPU (a request of (a) has
    // none), free of the log event's noise.
    const accessOnly: Record<string, { cpu: number[]; main: number[] }> = {};
    for (let round = 0; round < rounds; round++) {
      for (const arm of arms.filter((a) => a.spec.access)) {
        const c0 = cpuMs(arm.server.pid);
        const m0 = mainThreadCpuMs(arm.server.pid);
        let next = 0;
        await Promise.all(Array.from({ length: concurrency }, async () => {
          while (next < accessEvents) {
            const i = next++;
            await arm.workers[i % arm.workers.length]!.runEvent('access');
          }
        }));
        const a = (accessOnly[arm.spec.key] ??= { cpu: [], main: [] });
        a.cpu.push(((cpuMs(arm.server.pid) - c0) * 1000) / accessEvents);
        a.main.push(((mainThreadCpuMs(arm.server.pid) - m0) * 1000) / accessEvents);
      }
    }
    // The access event alone, one at a time: the round trip a request waits for.
    const seq: Record<string, ReturnType<typeof summarize>> = {};
    for (const arm of arms.filter((a) => a.spec.access)) {
      const lat: number[] = [];
      for (let i = 0; i < seqAccess; i++) lat.push((await arm.workers[i % arm.workers.length]!.runEvent('access')).durationMs);
      seq[arm.spec.key] = summarize(lat);
    }
    const rows = arms.map((a) => {
      const loaded = a.accessLoaded.length ? summarize(a.accessLoaded) : undefined;
      const d = deltas[a.spec.key];
      return {
        arm: a.spec.label,
        requests: a.requests,
        'server CPU µs/request': (a.cpuMs * 1000) / a.requests,
        'main thread µs/request': (a.mainMs * 1000) / a.requests,
        'Δ CPU µs vs (a) (median of rounds)': d ? median(d.cpu) : '',
        'Δ main µs vs (a)': d ? median(d.main) : '',
        'access event alone: CPU µs': accessOnly[a.spec.key] ? median(accessOnly[a.spec.key]!.cpu) : '',
        'access event alone: main µs': accessOnly[a.spec.key] ? median(accessOnly[a.spec.key]!.main) : '',
        'access RTT p50 ms (1 at a time)': seq[a.spec.key]?.p50 ?? '',
        'access RTT p99 ms (1 at a time)': seq[a.spec.key]?.p99 ?? '',
        [`access RTT p50 ms (${concurrency} in flight)`]: loaded?.p50 ?? '',
        [`access RTT p99 ms (${concurrency} in flight)`]: loaded?.p99 ?? '',
      };
    });
    return {
      name: 'fail-closed',
      title: 'Fail-closed routes: cost of the access phase per request',
      tables: [{ title: `${WORKERS} workers, ${concurrency} requests in flight, ${rounds} rounds of ${perRound} requests per arm (access + log event per request where the phase is declared)`, rows }],
      figures: {
        cpuPerRequestUs: Object.fromEntries(rows.map((r, i) => [arms[i]!.spec.key, r['server CPU µs/request']])),
        mainPerRequestUs: Object.fromEntries(rows.map((r, i) => [arms[i]!.spec.key, r['main thread µs/request']])),
        accessOpenDeltaCpuUs: median(deltas.access_open!.cpu),
        accessClosedDeltaCpuUs: median(deltas.access_closed!.cpu),
        accessOpenDeltaMainUs: median(deltas.access_open!.main),
        accessClosedDeltaMainUs: median(deltas.access_closed!.main),
        accessEventCpuUs: Object.fromEntries(Object.entries(accessOnly).map(([k, v]) => [k, median(v.cpu)])),
        accessEventMainUs: Object.fromEntries(Object.entries(accessOnly).map(([k, v]) => [k, median(v.main)])),
        accessRttP50Ms: Object.fromEntries(Object.entries(seq).map(([k, s]) => [k, s.p50])),
        accessRttP99Ms: Object.fromEntries(Object.entries(seq).map(([k, s]) => [k, s.p99])),
      },
      targets: [],
      notes: [
        'Deltas are per request against (a) in the same round; on a shared 2-core machine single rounds are noisy, the median of rounds is the figure.',
        'A refused request (503) costs the same access round trip (the exit travels in the HandleEvent answer) plus its log event, as any request.',
      ],
    };
  } finally {
    for (const a of arms) await a.server.dispose();
    await immudb.dispose();
  }
}
