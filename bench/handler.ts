// Benchmark 1: handler cost. Log events through the real plugin server, as Kong sends them
// (HandleEvent, one Step answering kong.log.serialize, then "ret"), for (a) the noop plugin making
// the same single PDK call and (b) our plugin with realistic 1-2 KB serialized logs, writing to a
// real immudb (default configuration: audit thread, spool with group-committed fsync,
// OpenTelemetry spans to a receiver). Also (b') tracing off, to show what tracing costs, and
// (b'') everything on the main thread (IMMUDB_AUDIT_THREAD=off). Rounds rotate over the arms,
// so the ratios are taken within one run; CPU per event (from /proc, all threads and the main
// thread that answers Kong) is the figure least disturbed by a noisy machine.
import { armRow, pairedCpu, roundRatios, runRounds, startArms, stopArms, type ArmSpec } from './lib/arms.js';
import { meanLength, serializedPool } from './lib/payloads.js';
import type { BenchContext, BenchResult } from './lib/report.js';
import { drive, startBenchImmudb } from './lib/stack.js';
import { checkTarget, median, ratio, summarize, type Summary } from './lib/stats.js';

const WORKERS = 2; // nginx workers on this 2-core machine

export const HANDLER_ARMS: ArmSpec[] = [
  { key: 'noop', label: '(a) noop: 1 kong.log.serialize()', kind: 'noop' },
  { key: 'audit', label: '(b) immudb-audit (defaults: audit thread)', kind: 'audit' },
  { key: 'audit_notrace', label: "(b') immudb-audit, tracing off", kind: 'audit', config: { tracing: { enabled: false } } },
  // The design before the audit thread (docs/decisions.md #13), for comparison.
  { key: 'audit_inprocess', label: "(b'') immudb-audit in process (IMMUDB_AUDIT_THREAD=off)", kind: 'audit', env: { IMMUDB_AUDIT_THREAD: 'off' } },
];

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const rounds = ctx.quick ? 2 : 3;
  const roundMs = ctx.quick ? 1500 : 2000;
  const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 64);
  const seqEvents = ctx.quick ? 300 : 1000;
  const pool = serializedPool(700);

  const immudb = await startBenchImmudb();
  const arms = await startArms(immudb, HANDLER_ARMS, WORKERS).catch(async (e) => {
    await immudb.dispose();
    throw e;
  });
  try {
    await runRounds(arms, pool, { rounds, roundMs, concurrency, warmupMs: ctx.quick ? 700 : 1200, log: (m) => ctx.log(`handler ${m}`) });
    const [a, b, bn, bp] = arms as [typeof arms[0], typeof arms[0], typeof arms[0], typeof arms[0]];
    // Equal load: all arms at the same paced rate at the same time, CPU per event of each.
    const pacedRate = 1000;
    const paired = await pairedCpu(arms, pool, { rate: pacedRate, windowMs: ctx.quick ? 1500 : 2500, windows: ctx.quick ? 2 : 3, log: (m) => ctx.log(`handler ${m}`) });
    const pairedCpuOf = (i: number) => median(paired.map((w) => w.cpu[i]!));
    const pairedRatio = (i: number) => median(paired.map((w) => w.cpu[0]! / w.cpu[i]!));
    const pairedMainOf = (i: number) => median(paired.map((w) => w.mainCpu[i]!));
    const pairedMainRatio = (i: number) => median(paired.map((w) => w.mainCpu[0]! / w.mainCpu[i]!));
    // Unloaded latency: one event at a time.
    const seq: Summary[] = [];
    for (const arm of arms) {
      const d = await drive(arm.workers, pool, { concurrency: 1, count: seqEvents, latencies: true });
      arm.sent += d.events;
      seq.push(summarize(d.latencies));
    }
    const rows: Array<Record<string, number | string>> = arms.map((arm, i) => ({ ...armRow(arm), 'p50 ms (1 at a time)': seq[i]!.p50, 'p99 ms (1 at a time)': seq[i]!.p99 }));
    const perRound = roundRatios(b, a);
    const perRoundNoTrace = roundRatios(bn, a);
    const r = median(perRound);
    const rn = median(perRoundNoTrace);
    const cpuA = rows[0]!['server CPU µs/event'] as number;
    const cpuB = rows[1]!['server CPU µs/event'] as number;
    const cpuBn = rows[2]!['server CPU µs/event'] as number;
    return {
      name: 'handler',
      title: '1. Handler cost: log events through the real plugin server',
      tables: [
        {
          title: `Saturated: ${concurrency} events in flight over ${WORKERS} workers, ${rounds} rotating rounds of ${roundMs / 1000} s each; serialized logs ${meanLength(pool).toFixed(0)} B on average. "1 at a time": ${seqEvents} events, one in flight`,
          rows,
        },
        {
          title: `Equal load: the servers loaded at the same time, ${pacedRate} events/s each, paced (${paired.length} windows, medians); CPU of each plugin server per event, all threads and the main thread (which answers Kong)`,
          rows: arms.map((arm, i) => ({
            plugin: arm.spec.label,
            'server CPU µs/event': pairedCpuOf(i),
            'CPU (a)/CPU (this)': pairedRatio(i),
            'events/s per server core (1e6/CPU)': 1e6 / pairedCpuOf(i),
            'main thread CPU µs/event': pairedMainOf(i),
            'main thread (a)/(this)': pairedMainRatio(i),
            'event loop p99 ms': median(paired.map((w) => w.eldP99[i]!)),
          })),
        },
        {
          title: 'Per round: events/s and ratios to (a)',
          rows: a.rounds.map((x, i) => ({ round: i + 1, '(a)': x.rate, '(b)': b.rounds[i]!.rate, "(b')": bn.rounds[i]!.rate, "(b'')": bp.rounds[i]!.rate, 'b/a': perRound[i], "b'/a": perRoundNoTrace[i], "b''/a": bp.rounds[i]!.rate / x.rate })),
        },
      ],
      figures: {
        ratioThroughput: r,
        ratioThroughputTracingOff: rn,
        ratioThroughputInProcess: median(roundRatios(bp, a)),
        mainThreadCpuRatio: pairedMainRatio(1),
        mainThreadCpuRatioInProcess: pairedMainRatio(3),
        perRoundRatios: perRound,
        serverCpuUsPerEvent: { noop: cpuA, audit: cpuB, auditTracingOff: cpuBn, auditInProcess: rows[3]!['server CPU µs/event'] as number },
        ratioServerCpu: ratio(cpuA, cpuB),
        equalLoad: {
          serverCpuUsPerEvent: arms.map((_, i) => pairedCpuOf(i)),
          cpuRatioToNoop: arms.map((_, i) => pairedRatio(i)),
          mainThreadCpuUsPerEvent: arms.map((_, i) => pairedMainOf(i)),
          mainThreadCpuRatioToNoop: arms.map((_, i) => pairedMainRatio(i)),
        },
        eventsPerSecPerServerCore: { noop: 1e6 / cpuA, audit: 1e6 / cpuB, auditTracingOff: 1e6 / cpuBn },
        rows,
        drainWaitMs: Object.fromEntries(arms.map((x) => [x.spec.key, x.drainWaitMs])),
        serializedBytesMean: meanLength(pool),
      },
      targets: [
        checkTarget('handler throughput b/a', r, '>=', 0.9),
        checkTarget('handler main-thread CPU per event a/b, equal load', pairedMainRatio(1), '>=', 0.9),
        checkTarget('handler CPU per event a/b (all threads), equal load', pairedRatio(1), '>=', 0.9),
      ],
      notes: [
        `plugin-server CPU per event: (a) ${cpuA.toFixed(0)} µs, (b) ${cpuB.toFixed(0)} µs, (b') ${cpuBn.toFixed(0)} µs: one plugin-server core carries about ${(1e6 / cpuB).toFixed(0)} audited events/s (${(1e6 / cpuA).toFixed(0)} bare PDK round trips/s)`,
        `tracing off: b'/a = ${rn.toFixed(2)}; in process (b''): b''/a = ${median(roundRatios(bp, a)).toFixed(2)}; main-thread CPU per event at equal load, (a)/(b) = ${pairedMainRatio(1).toFixed(2)} with the audit thread, (a)/(b'') = ${pairedMainRatio(3).toFixed(2)} in process`,
        'every audit event of a round was written and verified before the next round started (the pipeline runs during its own arm\'s rounds only)',
        'the driver (this process, playing Kong) and immudb share the 2 cores with the plugin servers; on a real node Kong\'s nginx workers take the driver\'s place',
      ],
    };
  } finally {
    await stopArms(arms);
    await immudb.dispose();
  }
}
