// Benchmark 4b: RSS of the plugin server with a deep backlog, default settings (issue 17's goal:
// <= 200 MiB at 400,000 entries backlogged while immudb is down, and flat). immudb is paused
// (SIGSTOP) after a warm-up; events keep coming; RSS, its anonymous and file-backed parts, and
// each thread's V8 heap (no forced GC: what the process really holds) are sampled every `step`
// entries; then immudb resumes and the backlog must be written and verified.
//   source scripts/env.sh && node dist/bench/deep-backlog.js [--count 400000] [--step 50000] [--cpu N]
//     [--env K=V ...] [--node-option FLAG ...]
// (--cpu N first measures the plugin server's CPU per event with immudb up, 3 rounds of N events.)
import { readFileSync } from 'node:fs';
import { cpuMs, probe, rss, type ProbeStats } from './lib/proc.js';
import { serializedPool } from './lib/payloads.js';
import { auditConfig, drive, startBenchImmudb, startBenchServer, startWorkers, WriteCounter } from './lib/stack.js';

const MiB = 2 ** 20;

function smaps(pid: number): { anon: number; file: number } {
  const s = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
  return { anon: kb('Anonymous'), file: kb('Rss') - kb('Anonymous') };
}

export interface BacklogPoint { backlog: number; rssMiB: number; anonMiB: number; fileMiB: number; heapMainMiB: number; heapThreadMiB: number; heapTotalMiB: number; heapTotalThreadMiB: number; externalMiB: number }

export async function deepBacklog(opts: { count: number; step: number; cpuEvents?: number; env?: Record<string, string>; nodeOptions?: string[]; queue?: Record<string, unknown>; log?: (m: string) => void }): Promise<{ points: BacklogPoint[]; catchUpMs: number }> {
  const pool = serializedPool(700);
  const immudb = await startBenchImmudb();
  const server = await startBenchServer('audit', { env: opts.env ?? {}, nodeOptions: opts.nodeOptions ?? [] });
  // Interrupted: leave no paused immudb or plugin server behind.
  const stop = () => {
    if (immudb.pid) process.kill(immudb.pid, 'SIGCONT');
    void Promise.allSettled([server.dispose(), immudb.dispose()]).then(() => process.exit(130));
  };
  process.once('SIGINT', stop).once('SIGTERM', stop);
  try {
    const db = 'bench_backlog';
    // Default settings: the schema's queue defaults (only retry delays shortened for the catch-up).
    const config = auditConfig(immudb, db, {}, { max_batch_size: 256, max_coalescing_delay: 0.2, max_entries: 10_000, initial_retry_delay: 0.05, max_retry_delay: 0.5, ...opts.queue });
    const workers = await startWorkers(server, 2, config);
    let sent = (await drive(workers, pool, { concurrency: 32, count: 5_000 })).events;
    const counter = await WriteCounter.open(immudb, db, server.dataDir);
    await counter.waitVerified(sent, 60_000);
    // CPU of the whole plugin server per event with immudb up (written and committed), rounds of cpuEvents.
    const cpuUsPerEvent: number[] = [];
    for (let r = 0; r < (opts.cpuEvents ? 3 : 0); r++) {
      const c0 = cpuMs(server.pid);
      const d = await drive(workers, pool, { concurrency: 64, count: opts.cpuEvents! });
      sent += d.events;
      let q = await counter.poll();
      while (q.committedEntries < sent) {
        await new Promise((res) => setTimeout(res, 100));
        q = await counter.poll();
      }
      cpuUsPerEvent.push(((cpuMs(server.pid) - c0) * 1000) / d.events);
    }
    if (cpuUsPerEvent.length) opts.log?.(`cpu us/event (plugin server, all threads): ${cpuUsPerEvent.map((c) => c.toFixed(0)).join(', ')}`);
    const points: BacklogPoint[] = [];
    const sample = async (backlog: number) => {
      const main = await probe<ProbeStats>(server.probeSock, { cmd: 'stats' });
      const thread = await probe<ProbeStats>(`${server.probeSock}.thread`, { cmd: 'stats' }).catch(() => undefined);
      const m = smaps(server.pid);
      const p: BacklogPoint = {
        backlog, rssMiB: rss(server.pid).rss / MiB, anonMiB: m.anon / MiB, fileMiB: m.file / MiB,
        heapMainMiB: main.heapUsed / MiB, heapThreadMiB: (thread?.heapUsed ?? 0) / MiB, heapTotalMiB: (main.heapTotal + (thread?.heapTotal ?? 0)) / MiB, heapTotalThreadMiB: (thread?.heapTotal ?? 0) / MiB,
        externalMiB: (main.external + main.arrayBuffers + (thread ? thread.external + thread.arrayBuffers : 0)) / MiB,
      };
      points.push(p);
      opts.log?.(JSON.stringify(Object.fromEntries(Object.entries(p).map(([k, v]) => [k, Math.round(v * 10) / 10]))));
    };
    await sample(0);
    process.kill(immudb.pid!, 'SIGSTOP');
    let catchUpMs = NaN;
    try {
      for (let done = 0; done < opts.count;) {
        const d = await drive(workers, pool, { concurrency: 32, count: Math.min(opts.step, opts.count - done) });
        if (d.errors) throw new Error(`${d.errors} events failed while immudb was paused: ${d.firstError}`);
        done += d.events;
        sent += d.events;
        await sample(done);
      }
    } finally {
      process.kill(immudb.pid!, 'SIGCONT');
    }
    const t0 = performance.now();
    // Committed, not verified: the counter's reading of the trusted state is not what is measured here.
    let p = await counter.poll();
    while (p.committedEntries < sent && performance.now() - t0 < 300_000) {
      await new Promise((r) => setTimeout(r, 500));
      p = await counter.poll();
    }
    if (p.committedEntries < sent) throw new Error(`only ${p.committedEntries} of ${sent} committed after immudb resumed`);
    catchUpMs = p.at - t0;
    opts.log?.(`caught up: ${sent} committed, ${(catchUpMs / 1000).toFixed(1)} s after immudb resumed`);
    return { points, catchUpMs };
  } finally {
    await server.dispose();
    await immudb.dispose();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const arg = (name: string, d: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : d);
  const env: Record<string, string> = {};
  const nodeOptions: string[] = [];
  args.forEach((a, i) => {
    if (a === '--env') {
      const [k, ...v] = args[i + 1]!.split('=');
      env[k!] = v.join('=');
    }
    if (a === '--node-option') nodeOptions.push(args[i + 1]!);
  });
  deepBacklog({ count: arg('--count', 400_000), step: arg('--step', 50_000), cpuEvents: arg('--cpu', 0), env, nodeOptions, log: (m) => process.stdout.write(`${m}\n`) }).then(
    () => process.exit(0),
    (e) => {
      process.stderr.write(`${(e as Error).stack}\n`);
      process.exit(1);
    },
  );
}
