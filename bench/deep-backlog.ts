// Benchmark 4b: RSS of the plugin server with a deep backlog, default settings (issue 17's goal:
// <= 200 MiB at 400,000 entries backlogged while immudb is down, and flat). One plugin server per
// arm (default settings unless the arm says otherwise), side by side on one immudb. CPU per event
// is measured first with immudb up, all arms driven at once in each round; then immudb is paused
// (SIGSTOP), events keep coming, `step` entries to each arm in turn, and after each step RSS, its
// parts by kind of mapping and each isolate's V8 heap (no forced GC: what the process really
// holds) are sampled; then immudb resumes and every arm's backlog must be committed.
//   source scripts/env.sh && node dist/bench/deep-backlog.js [--count 400000] [--step 50000] [--cpu N [--cpu-rounds 3]]
//     [--arm 'label;--v8-flag ...;K=V ...' ...]
// (no --arm: one arm, the defaults; `npm run bench -- --only deep-backlog` runs it as benchmark 4b)
import { readFileSync } from 'node:fs';
import { cpuMs, probe, rss, type ProbeStats } from './lib/proc.js';
import { serializedPool } from './lib/payloads.js';
import type { BenchContext, BenchResult } from './lib/report.js';
import { auditConfig, drive, startBenchImmudb, startBenchServer, startWorkers, WriteCounter, type BenchServer } from './lib/stack.js';
import { checkTarget } from './lib/stats.js';
import type { KongInstance } from '../test/helpers/kong-driver.js';

const MiB = 2 ** 20;

/**
 * The process's resident memory by kind of mapping (/proc/<pid>/smaps): file-backed (code, the
 * node binary), the brk heap (glibc's main malloc arena), glibc's thread arenas (read-write
 * anonymous mappings at a 64 MiB boundary: glibc's per-thread heaps are 64 MiB aligned), and the
 * other anonymous mappings (V8's heap pages and code, thread stacks, large mallocs).
 */
export function smaps(pid: number): { anon: number; file: number; brk: number; arenas: number; arenaCount: number; otherAnon: number } {
  const out = { anon: 0, file: 0, brk: 0, arenas: 0, arenaCount: 0, otherAnon: 0 };
  let kind = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const [, start, perms, name] = head;
      kind = name!.startsWith('/') ? 'file' : name === '[heap]' ? 'brk' : name ? 'other' : perms === 'rw-p' && BigInt(`0x${start}`) % (64n << 20n) === 0n ? 'arena' : 'anon';
      if (kind === 'arena') out.arenaCount++;
      continue;
    }
    const rssKb = /^Rss:\s+(\d+) kB/.exec(line);
    if (!rssKb) continue;
    const b = Number(rssKb[1]) * 1024;
    if (kind === 'file') out.file += b;
    else out.anon += b;
    if (kind === 'brk') out.brk += b;
    else if (kind === 'arena') out.arenas += b;
    else if (kind === 'anon') out.otherAnon += b;
  }
  return out;
}

export interface BacklogPoint {
  backlog: number; rssMiB: number; anonMiB: number; fileMiB: number;
  /** glibc malloc: the brk heap and the thread arenas. */
  brkMiB: number; arenasMiB: number; arenaCount: number;
  /** Anonymous mappings that are neither: V8's heap pages, thread stacks, large mallocs. */
  otherAnonMiB: number;
  /** V8 heap pages touched (total_physical_size) in each isolate, and what V8 mallocs beside. */
  v8MainMiB: number; v8ThreadMiB: number; v8MallocMiB: number;
  /** Young generation (new_space) of each isolate, physical. */
  newMainMiB: number; newThreadMiB: number;
  heapMainMiB: number; heapThreadMiB: number; heapTotalMiB: number; heapTotalThreadMiB: number;
  bufMainMiB: number; bufThreadMiB: number;
}

export interface BacklogArm { label: string; env?: Record<string, string>; nodeOptions?: string[] }
export interface ArmResult { label: string; points: BacklogPoint[]; cpuUsPerEvent: number[]; catchUpMs: number }

async function sample(server: BenchServer, backlog: number): Promise<BacklogPoint> {
  const main = await probe<ProbeStats>(server.probeSock, { cmd: 'stats' });
  const thread = await probe<ProbeStats>(`${server.probeSock}.thread`, { cmd: 'stats' }).catch(() => undefined);
  const m = smaps(server.pid);
  return {
    backlog, rssMiB: rss(server.pid).rss / MiB, anonMiB: m.anon / MiB, fileMiB: m.file / MiB,
    brkMiB: m.brk / MiB, arenasMiB: m.arenas / MiB, arenaCount: m.arenaCount, otherAnonMiB: m.otherAnon / MiB,
    v8MainMiB: main.v8.total_physical_size / MiB, v8ThreadMiB: (thread?.v8.total_physical_size ?? 0) / MiB, v8MallocMiB: (main.v8.malloced_memory + (thread?.v8.malloced_memory ?? 0)) / MiB,
    newMainMiB: (main.spaces.new_space ?? 0) / MiB, newThreadMiB: (thread?.spaces.new_space ?? 0) / MiB,
    heapMainMiB: main.heapUsed / MiB, heapThreadMiB: (thread?.heapUsed ?? 0) / MiB, heapTotalMiB: (main.heapTotal + (thread?.heapTotal ?? 0)) / MiB, heapTotalThreadMiB: (thread?.heapTotal ?? 0) / MiB,
    bufMainMiB: (main.external + main.arrayBuffers) / MiB, bufThreadMiB: thread ? (thread.external + thread.arrayBuffers) / MiB : 0,
  };
}

const round1 = (p: object) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, typeof v === 'number' ? Math.round(v * 10) / 10 : v]));

export async function deepBacklog(opts: { arms: BacklogArm[]; count: number; step: number; cpuEvents?: number; cpuRounds?: number; queue?: Record<string, unknown>; log?: (m: string) => void }): Promise<ArmResult[]> {
  const pool = serializedPool(700);
  const immudb = await startBenchImmudb();
  const servers: BenchServer[] = [];
  // Interrupted: leave no paused immudb or plugin server behind.
  const stop = () => {
    if (immudb.pid) process.kill(immudb.pid, 'SIGCONT');
    void Promise.allSettled([...servers.map((s) => s.dispose()), immudb.dispose()]).then(() => process.exit(130));
  };
  process.once('SIGINT', stop).once('SIGTERM', stop);
  try {
    const arms: Array<ArmResult & { server: BenchServer; workers: KongInstance[]; counter: WriteCounter; sent: number }> = [];
    for (const a of opts.arms) {
      const server = await startBenchServer('audit', { env: a.env ?? {}, nodeOptions: a.nodeOptions ?? [] });
      servers.push(server);
      const db = `bench_backlog_${arms.length}`;
      // Default settings: the schema's queue defaults (only retry delays shortened for the catch-up).
      const config = auditConfig(immudb, db, {}, { max_batch_size: 256, max_coalescing_delay: 0.2, max_entries: 10_000, initial_retry_delay: 0.05, max_retry_delay: 0.5, ...opts.queue });
      const workers = await startWorkers(server, 2, config);
      const sent = (await drive(workers, pool, { concurrency: 32, count: 5_000 })).events;
      const counter = await WriteCounter.open(immudb, db, server.dataDir);
      arms.push({ label: a.label, server, workers, counter, sent, points: [], cpuUsPerEvent: [], catchUpMs: NaN });
    }
    for (const a of arms) await a.counter.waitVerified(a.sent, 60_000);
    // CPU of the whole plugin server per event with immudb up (written and committed): rounds
    // of cpuEvents, all arms driven at once, so that the machine's other load hits each alike.
    for (let r = 0; r < (opts.cpuEvents ? (opts.cpuRounds ?? 3) : 0); r++) {
      await Promise.all(arms.map(async (a) => {
        const c0 = cpuMs(a.server.pid);
        const d = await drive(a.workers, pool, { concurrency: 64, count: opts.cpuEvents! });
        a.sent += d.events;
        let q = await a.counter.poll();
        while (q.committedEntries < a.sent) {
          await new Promise((res) => setTimeout(res, 100));
          q = await a.counter.poll();
        }
        a.cpuUsPerEvent.push(((cpuMs(a.server.pid) - c0) * 1000) / d.events);
      }));
    }
    for (const a of arms) if (a.cpuUsPerEvent.length) opts.log?.(`${a.label}: cpu us/event (plugin server, all threads): ${a.cpuUsPerEvent.map((c) => c.toFixed(0)).join(', ')}; mean ${(a.cpuUsPerEvent.reduce((x, y) => x + y, 0) / a.cpuUsPerEvent.length).toFixed(1)}`);
    const take = async (a: (typeof arms)[number], backlog: number) => {
      const p = await sample(a.server, backlog);
      a.points.push(p);
      opts.log?.(`${a.label}: ${JSON.stringify(round1(p))}`);
    };
    for (const a of arms) await take(a, 0);
    process.kill(immudb.pid!, 'SIGSTOP');
    const base = new Map(arms.map((a) => [a, a.sent]));
    try {
      for (let done = 0; done < opts.count;) {
        const n = Math.min(opts.step, opts.count - done);
        for (const a of arms) {
          const d = await drive(a.workers, pool, { concurrency: 32, count: n });
          if (d.errors) throw new Error(`${a.label}: ${d.errors} events failed while immudb was paused: ${d.firstError}`);
          a.sent += d.events;
        }
        done += n;
        for (const a of arms) await take(a, a.sent - base.get(a)!);
      }
    } finally {
      process.kill(immudb.pid!, 'SIGCONT');
    }
    // Committed, not verified: the counter's reading of the trusted state is not what is measured here.
    const t0 = performance.now();
    for (const a of arms) {
      let p = await a.counter.poll();
      while (p.committedEntries < a.sent && performance.now() - t0 < 600_000) {
        await new Promise((r) => setTimeout(r, 500));
        p = await a.counter.poll();
      }
      if (p.committedEntries < a.sent) throw new Error(`${a.label}: only ${p.committedEntries} of ${a.sent} committed after immudb resumed`);
      a.catchUpMs = p.at - t0;
      opts.log?.(`${a.label}: caught up: ${a.sent} committed, ${(a.catchUpMs / 1000).toFixed(1)} s after immudb resumed (arms catching up at once)`);
    }
    return arms.map(({ label, points, cpuUsPerEvent, catchUpMs }) => ({ label, points, cpuUsPerEvent, catchUpMs }));
  } finally {
    process.off('SIGINT', stop).off('SIGTERM', stop);
    for (const s of servers) await s.dispose();
    await immudb.dispose();
  }
}

/** `npm run bench -- --only deep-backlog`: the goal as stated, 400,000 entries (60,000 in quick mode). */
export async function run(ctx: BenchContext): Promise<BenchResult> {
  const count = ctx.quick ? 60_000 : 400_000;
  const step = ctx.quick ? 20_000 : 50_000;
  const [r] = await deepBacklog({ arms: [{ label: 'defaults' }], count, step, log: ctx.log });
  const pts = r!.points;
  const last = pts.at(-1)!;
  // Flat: what RSS still gains over the second half of the backlog.
  const half = pts.find((p) => p.backlog >= count / 2)!;
  return {
    name: 'deep-backlog',
    title: `4b. RSS with ${count.toLocaleString('en')} entries backlogged while immudb is paused (default settings)`,
    tables: [{
      title: 'RSS by depth, and where it is (MiB; V8 = heap pages touched per isolate; heap used and buffers without a forced GC, so garbage included)',
      rows: pts.map((p) => ({
        'entries backlogged': p.backlog, 'RSS': p.rssMiB, 'file-backed': p.fileMiB, 'malloc (brk + arenas)': p.brkMiB + p.arenasMiB,
        'V8 main': p.v8MainMiB, 'V8 audit thread': p.v8ThreadMiB, 'other anon': p.otherAnonMiB - p.v8MainMiB - p.v8ThreadMiB,
        'heap used main': p.heapMainMiB, 'heap used thread': p.heapThreadMiB, 'buffers': p.bufMainMiB + p.bufThreadMiB,
      })),
    }],
    figures: { points: pts, catchUpMs: r!.catchUpMs, count },
    targets: [
      checkTarget(`RSS MiB with ${count / 1000}k backlogged`, last.rssMiB, '<=', 200),
      checkTarget(`RSS MiB gained from ${half.backlog / 1000}k to ${count / 1000}k backlogged (flat)`, last.rssMiB - half.rssMiB, '<=', 10),
    ],
    notes: [
      `catch-up once immudb resumed: ${(r!.catchUpMs / 1000).toFixed(1)} s for the backlog`,
      'other anon = anonymous mappings outside malloc\'s arenas less V8\'s heap pages: thread stacks, large Buffers, V8 code and metadata',
    ],
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const arg = (name: string, d: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : d);
  const arms: BacklogArm[] = [];
  args.forEach((a, i) => {
    if (a !== '--arm') return;
    const [label, flags, env] = args[i + 1]!.split(';');
    arms.push({
      label: label!,
      nodeOptions: (flags ?? '').split(' ').filter(Boolean),
      env: Object.fromEntries((env ?? '').split(' ').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
    });
  });
  if (!arms.length) arms.push({ label: 'defaults' });
  deepBacklog({ arms, count: arg('--count', 400_000), step: arg('--step', 50_000), cpuEvents: arg('--cpu', 0), cpuRounds: arg('--cpu-rounds', 3), log: (m) => process.stdout.write(`${m}\n`) }).then(
    () => process.exit(0),
    (e) => {
      process.stderr.write(`${(e as Error).stack}\n`);
      process.exit(1);
    },
  );
}
