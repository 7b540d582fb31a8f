// Benchmark 4: memory of the plugin server. RSS (and V8 heap after a full GC, via the probe) at
// rest, under steady load with immudb up, then while immudb is down, after each further 10,000
// entries queued; then the catch-up once immudb is back. Servers side by side: a large
// in-memory queue bound (queue.max_entries 100,000, the spool holding everything as well), the
// default bound (10,000), past which entries wait in the spool only and memory should stay flat,
// and the default in process (IMMUDB_AUDIT_THREAD=off: one V8 isolate instead of two). Heap and
// buffers are summed over the main thread and the audit thread (each has its own probe).
import { probe, rss, type ProbeStats } from './lib/proc.js';
import { serializedPool } from './lib/payloads.js';
import type { BenchContext, BenchResult } from './lib/report.js';
import {
  auditConfig, drive, startBenchImmudb, startBenchServer, startWorkers, WriteCounter, sleep,
  type BenchServer,
} from './lib/stack.js';
import { perSecond, slope } from './lib/stats.js';
import type { KongInstance } from '../test/helpers/kong-driver.js';

const MB = 1024 * 1024;
const STEP = 10_000;

interface Arm {
  label: string;
  maxEntries: number;
  server: BenchServer;
  workers: KongInstance[];
  counter: WriteCounter;
  sent: number;
  points: Array<{ phase: string; queued: number; rssMB: number; heapMB: number; externalMB: number }>;
}

async function sample(a: Arm, phase: string, queued: number): Promise<void> {
  const main = await probe<ProbeStats>(a.server.probeSock, { cmd: 'gc' });
  // The audit thread's isolate (absent in process).
  const thread = await probe<ProbeStats>(`${a.server.probeSock}.thread`, { cmd: 'gc' }).catch(() => undefined);
  const heap = main.heapUsed + (thread?.heapUsed ?? 0);
  const buffers = main.external + main.arrayBuffers + (thread ? thread.external + thread.arrayBuffers : 0);
  a.points.push({ phase, queued, rssMB: rss(a.server.pid).rss / MB, heapMB: heap / MB, externalMB: buffers / MB });
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const steps = ctx.quick ? 2 : 3;
  const pool = serializedPool(700);
  const immudb = await startBenchImmudb();
  const arms: Arm[] = [];
  try {
    const specs: Array<[string, number, Record<string, string>]> = [
      ['queue.max_entries 100,000', 100_000, {}],
      ['queue.max_entries 10,000 (default)', 10_000, {}],
      ['max_entries 10,000, in process (IMMUDB_AUDIT_THREAD=off)', 10_000, { IMMUDB_AUDIT_THREAD: 'off' }],
    ];
    for (const [label, maxEntries, env] of ctx.quick ? specs.slice(0, 2) : specs) {
      const server = await startBenchServer('audit', { nodeOptions: ['--expose-gc'], env });
      const db = `bench_mem_${arms.length}`;
      const workers = await startWorkers(server, 2, auditConfig(immudb, db, {}, { max_entries: maxEntries, max_retry_delay: 0.5 }));
      const arm: Arm = { label, maxEntries, server, workers, counter: undefined as unknown as WriteCounter, sent: 0, points: [] };
      arms.push(arm);
      arm.sent += (await drive(workers, pool, { concurrency: 16, count: 200 })).events;
      arm.counter = await WriteCounter.open(immudb, db, server.dataDir);
    }
    // At rest after a warm-up, then under steady load (immudb up).
    for (const a of arms) {
      a.sent += (await drive(a.workers, pool, { concurrency: 32, count: 5_000 })).events;
      await a.counter.waitVerified(a.sent, 60_000);
      await sample(a, 'at rest (warm, queue empty)', 0);
    }
    const loadMs = ctx.quick ? 1500 : 2000;
    for (const a of arms) {
      let peak = 0;
      const timer = setInterval(() => {
        peak = Math.max(peak, rss(a.server.pid).rss);
      }, 100);
      a.sent += (await drive(a.workers, pool, { concurrency: 32, durationMs: loadMs })).events;
      clearInterval(timer);
      await a.counter.waitVerified(a.sent, 60_000);
      a.points.push({ phase: `steady load ${loadMs / 1000} s (peak RSS during)`, queued: 0, rssMB: peak / MB, heapMB: NaN, externalMB: NaN });
      await sample(a, 'after steady load (drained)', 0);
    }
    // immudb down: queue STEP entries at a time.
    await immudb.stop();
    const baseline = new Map(arms.map((a) => [a, a.sent]));
    for (let s = 1; s <= steps; s++) {
      for (const a of arms) {
        const d = await drive(a.workers, pool, { concurrency: 32, count: STEP });
        if (d.errors) throw new Error(`${a.label}: ${d.errors} events failed while immudb was down: ${d.firstError}`);
        a.sent += d.events;
        await sleep(200);
        await sample(a, 'immudb down', a.sent - baseline.get(a)!);
      }
    }
    // immudb back: catch up.
    await immudb.restart();
    const catchUp = new Map<Arm, { ms: number; rate: number }>();
    const t0 = performance.now();
    for (const a of arms) {
      const p = await a.counter.waitVerified(a.sent, 180_000);
      if (p.verifiedEntries < a.sent) throw new Error(`${a.label}: only ${p.verifiedEntries} of ${a.sent} verified after immudb came back`);
      catchUp.set(a, { ms: p.at - t0, rate: perSecond(steps * STEP, p.at - t0) });
    }
    for (const a of arms) await sample(a, 'after catch-up', 0);

    const rows = arms.flatMap((a) => a.points.map((p) => ({ server: a.label, phase: p.phase, 'queued entries': p.queued, 'RSS MB': p.rssMB, 'heap MB (after GC)': p.heapMB, 'buffers MB': p.externalMB })));
    const slopes = arms.map((a) => {
      const down = a.points.filter((p) => p.phase === 'immudb down');
      const rest = a.points.find((p) => p.phase === 'after steady load (drained)')!;
      const xs = [0, ...down.map((p) => p.queued)];
      return {
        server: a.label,
        'RSS MB per 10,000 queued': slope(xs, [rest.rssMB, ...down.map((p) => p.rssMB)]) * STEP,
        'heap MB per 10,000 queued': slope(xs, [rest.heapMB, ...down.map((p) => p.heapMB)]) * STEP,
        'buffers MB per 10,000 queued': slope(xs, [rest.externalMB, ...down.map((p) => p.externalMB)]) * STEP,
        'catch-up s': catchUp.get(a)!.ms / 1000,
        'catch-up entries/s (all servers at once)': catchUp.get(a)!.rate,
      };
    });
    return {
      name: 'memory',
      title: '4. Memory of the plugin server: at rest, under load, and while immudb is down',
      tables: [
        { title: 'RSS and heap (after a full GC) by phase', rows },
        { title: `Growth while immudb is down (least squares over 0..${steps * STEP} queued), and catch-up once it is back`, rows: slopes },
      ],
      figures: { points: rows, slopes },
      targets: [],
      notes: [
        'entries are in the spool (disk) before the handler returns; the memory queue holds up to queue.max_entries of them, the rest are read back from the spool as the queue drains',
        'catch-up includes the writer noticing immudb is back (retry backoff capped at 0.5 s here)',
      ],
    };
  } finally {
    for (const a of arms) await a.server.dispose();
    await immudb.dispose();
  }
}
