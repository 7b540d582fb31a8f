// Preloaded into a plugin server under benchmark (NODE_OPTIONS="--import <this file>"), never in
// production. Passive until asked: it keeps an event-loop delay histogram and answers JSON-line
// commands on the Unix socket $BENCH_PROBE_SOCK:
//   {"cmd":"stats","reset":true}   rss, heap, cpu time, event-loop delay (then resets the histogram)
//   {"cmd":"gc"}                    full GC first (needs --expose-gc), then stats
//   {"cmd":"profile-start","intervalUs":500} / {"cmd":"profile-stop","path":"..."}  V8 CPU profile
// $BENCH_V8_FLAGS (space-separated) are set with v8.setFlagsFromString at load, for comparing flags
// Node does not take in NODE_OPTIONS.
import { writeFileSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { Session } from 'node:inspector';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';
import { getHeapSpaceStatistics, getHeapStatistics, setFlagsFromString } from 'node:v8';

// --import preloads run in worker threads too: the main thread answers on $BENCH_PROBE_SOCK,
// the plugin's audit thread (its only worker) on $BENCH_PROBE_SOCK.thread, each about its own
// isolate (heap, event loop, CPU profile; rss and cpu time are the process's).
const sockPath = process.env.BENCH_PROBE_SOCK ? (isMainThread ? process.env.BENCH_PROBE_SOCK : `${process.env.BENCH_PROBE_SOCK}.thread`) : undefined;

function post<T>(session: Session, method: string, params?: object): Promise<T> {
  return new Promise((resolve, reject) => {
    session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res as T)));
  });
}

// V8 flags Node does not take in NODE_OPTIONS (--optimize-for-size), set as early as a program
// could set them itself: before the audit thread's isolate exists, after the main one's.
if (isMainThread) for (const f of (process.env.BENCH_V8_FLAGS ?? '').split(' ').filter(Boolean)) setFlagsFromString(f);

if (sockPath) {
  const eld = monitorEventLoopDelay({ resolution: 5 });
  eld.enable();
  let session: Session | undefined;

  const stats = (reset: boolean) => {
    const m = process.memoryUsage();
    const cpu = process.cpuUsage();
    const ms = (ns: number) => ns / 1e6;
    const out = {
      pid: process.pid,
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      // This isolate's heap as V8 sees it: committed (total_heap_size), touched
      // (total_physical_size), and what V8 itself mallocs outside the heap.
      v8: (({ total_heap_size, total_physical_size, used_heap_size, malloced_memory, peak_malloced_memory, heap_size_limit }) => ({ total_heap_size, total_physical_size, used_heap_size, malloced_memory, peak_malloced_memory, heap_size_limit }))(getHeapStatistics()),
      /** Physical size of each heap space (new_space, old_space, code_space, large_object_space, ...). */
      spaces: Object.fromEntries(getHeapSpaceStatistics().map((x) => [x.space_name, x.physical_space_size])),
      cpuUserMs: cpu.user / 1000,
      cpuSystemMs: cpu.system / 1000,
      eld: {
        count: eld.count,
        meanMs: ms(eld.mean),
        p50Ms: ms(eld.percentile(50)),
        p99Ms: ms(eld.percentile(99)),
        maxMs: ms(eld.max),
      },
    };
    if (reset) eld.reset();
    return out;
  };

  const handle = async (cmd: Record<string, unknown>): Promise<unknown> => {
    switch (cmd.cmd) {
      case 'stats':
        return stats(Boolean(cmd.reset));
      case 'gc': {
        const gc = (globalThis as { gc?: () => void }).gc;
        if (gc) {
          gc();
          gc();
        }
        return { gc: Boolean(gc), ...stats(Boolean(cmd.reset)) };
      }
      case 'profile-start': {
        session ??= new Session();
        session.connect();
        await post(session, 'Profiler.enable');
        await post(session, 'Profiler.setSamplingInterval', { interval: Number(cmd.intervalUs ?? 500) });
        await post(session, 'Profiler.start');
        return { ok: true };
      }
      case 'profile-stop': {
        if (!session) throw new Error('no profile running');
        const { profile } = await post<{ profile: unknown }>(session, 'Profiler.stop');
        session.disconnect();
        session = undefined;
        writeFileSync(String(cmd.path), JSON.stringify(profile));
        return { ok: true, path: cmd.path };
      }
      default:
        throw new Error(`unknown probe command ${String(cmd.cmd)}`);
    }
  };

  try {
    rmSync(sockPath, { force: true });
  } catch {
    // nothing to remove
  }
  const server = createServer((sock: Socket) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let cmd: Record<string, unknown>;
        try {
          cmd = JSON.parse(line) as Record<string, unknown>;
        } catch {
          sock.write(JSON.stringify({ error: 'bad json' }) + '\n');
          continue;
        }
        handle(cmd).then(
          (res) => sock.write(JSON.stringify({ ok: true, result: res }) + '\n'),
          (err: Error) => sock.write(JSON.stringify({ ok: false, error: err.message }) + '\n'),
        );
      }
    });
    sock.on('error', () => undefined);
  });
  server.listen(sockPath);
  server.unref();
}
