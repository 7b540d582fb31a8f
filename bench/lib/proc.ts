// Process and machine facts from /proc (Linux), and a client for bench/probe.ts.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import * as os from 'node:os';
import { join } from 'node:path';

let ticks: number | undefined;
function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** CPU time (user + system) of a process so far (all its threads), in ms; NaN if it is gone. */
export function cpuMs(pid: number): number {
  return statCpuMs(`/proc/${pid}/stat`);
}

/** CPU time of a process's main thread only (the one running Node's event loop), in ms. */
export function mainThreadCpuMs(pid: number): number {
  return statCpuMs(`/proc/${pid}/task/${pid}/stat`);
}

function statCpuMs(file: string): number {
  try {
    const stat = readFileSync(file, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(f[11]);
    const stime = Number(f[12]);
    return ((utime + stime) * 1000) / clockTicks();
  } catch {
    return NaN;
  }
}

/** Resident set size in bytes (VmRSS) and its high-water mark (VmHWM). */
export function rss(pid: number): { rss: number; hwm: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return { rss: NaN, hwm: NaN };
  }
}

/** Pid of the first process whose command line contains every fragment (our own children only). */
export function findPid(...fragments: string[]): number | undefined {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(join('/proc', d, 'cmdline'), 'utf8').replace(/\0/g, ' ');
      if (fragments.every((f) => cmd.includes(f))) return Number(d);
    } catch {
      // gone
    }
  }
  return undefined;
}

/** CPU-time meter over a set of processes: `lap()` returns ms of CPU each used since the last lap. */
export class CpuMeter {
  private last: Record<string, number>;
  /** `pids`: name -> pid (whole process), or { mainThread: pid } for its main thread only. */
  constructor(private readonly pids: Record<string, number | { mainThread: number } | undefined>) {
    this.last = this.read();
  }

  private read(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, pid] of Object.entries(this.pids)) {
      if (pid === undefined) out[k] = NaN;
      else if (typeof pid === 'object') out[k] = mainThreadCpuMs(pid.mainThread);
      else out[k] = pid === process.pid ? ownCpuMs() : cpuMs(pid);
    }
    return out;
  }

  lap(): Record<string, number> {
    const now = this.read();
    const d: Record<string, number> = {};
    for (const k of Object.keys(now)) d[k] = now[k]! - this.last[k]!;
    this.last = now;
    return d;
  }
}

function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memGiB: number;
  os: string;
  node: string;
  immudb: string;
  loadAvg: number[];
}

export function machineInfo(immudbBinDir?: string): MachineInfo {
  let immudb = 'unknown';
  if (immudbBinDir) {
    try {
      const out = execFileSync(join(immudbBinDir, 'immudb'), ['version'], { encoding: 'utf8', timeout: 10_000 });
      immudb = /Version:\s*(v?\d\S*)/i.exec(out)?.[1] ?? '';
    } catch {
      // keep unknown
    }
    // Builds from the Go module carry no version stamp: the cache path names it (…/immudb/v1.11.1/bin).
    if (!immudb || immudb === 'unknown') immudb = /\/(v\d+\.\d+\.\d+[^/]*)\//.exec(immudbBinDir + '/')?.[1] ?? 'unknown';
  }
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    immudb,
    loadAvg: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

export interface ProbeStats {
  pid: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  v8: { total_heap_size: number; total_physical_size: number; used_heap_size: number; malloced_memory: number; peak_malloced_memory: number; heap_size_limit: number };
  spaces: Record<string, number>;
  gc?: boolean;
  eld: { count: number; meanMs: number; p50Ms: number; p99Ms: number; maxMs: number };
}

/** One command to bench/probe.ts inside a plugin server. */
export function probe<T = ProbeStats>(sockPath: string, cmd: Record<string, unknown>, timeoutMs = 30_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const s = connect(sockPath);
    let buf = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`probe ${String(cmd.cmd)}: timeout`));
    }, timeoutMs);
    s.setEncoding('utf8');
    s.on('connect', () => s.write(JSON.stringify(cmd) + '\n'));
    s.on('data', (c: string) => {
      buf += c;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      s.end();
      const res = JSON.parse(buf.slice(0, nl)) as { ok: boolean; result?: T; error?: string };
      if (res.ok) resolve(res.result as T);
      else reject(new Error(`probe ${String(cmd.cmd)}: ${res.error}`));
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** The threads of a Node process, grouped by what runs on them (Linux thread names, /proc/<pid>/task/<tid>/comm). */
export type ThreadGroup = 'main' | 'audit' | 'v8' | 'libuv' | 'other';

function threadGroup(pid: number, tid: string, comm: string): ThreadGroup {
  if (Number(tid) === pid) return 'main';
  if (/^(WorkerThread|audit)/.test(comm)) return 'audit'; // the plugin's one worker_threads Worker
  if (/^(V8Worker|V8 DefaultWorke|DelayedTaskSche)/.test(comm)) return 'v8';
  if (/^libuv-worker/.test(comm)) return 'libuv';
  return 'other';
}

/** CPU ms so far of each thread group of `pid` (threads that exited are lost: keep the process up). */
export function threadGroupCpuMs(pid: number): Record<ThreadGroup, number> {
  const out: Record<ThreadGroup, number> = { main: 0, audit: 0, v8: 0, libuv: 0, other: 0 };
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return { main: NaN, audit: NaN, v8: NaN, libuv: NaN, other: NaN };
  }
  for (const tid of tids) {
    let comm: string;
    try {
      comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    const ms = statCpuMs(`/proc/${pid}/task/${tid}/stat`);
    if (Number.isFinite(ms)) out[threadGroup(pid, tid, comm)] += ms;
  }
  return out;
}

/** Lap meter over the thread groups of one process. */
export class ThreadMeter {
  private last: Record<ThreadGroup, number>;
  constructor(private readonly pid: number) {
    this.last = threadGroupCpuMs(pid);
  }

  lap(): Record<ThreadGroup, number> {
    const now = threadGroupCpuMs(this.pid);
    const d = { ...now };
    for (const k of Object.keys(now) as ThreadGroup[]) d[k] = now[k] - this.last[k];
    this.last = now;
    return d;
  }
}
