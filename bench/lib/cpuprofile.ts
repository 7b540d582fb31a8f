// Summaries of V8 .cpuprofile files (from `node --cpu-prof` or the inspector's Profiler): time
// per category of code (capture, canonical JSON, hashing and proofs, gRPC, protobuf, the plugin
// server's RPC, GC, idle...) and the top frames. Pure: takes the parsed JSON (unit-tested in
// test/unit/bench-cpuprofile.test.ts).

export interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber?: number;
  scriptId?: string | number;
}

export interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** Categories, first match wins; `null` means "inherit the caller's category" (builtins, natives). */
export const CATEGORY_RULES: ReadonlyArray<[RegExp, string]> = [
  [/\/dist\/plugin\/store\/proofs\//, 'proofs+hashing'],
  [/\/dist\/plugin\/store\/trusted-state/, 'trusted-state (fsync)'],
  [/\/dist\/plugin\/store\//, 'store (immudb client)'],
  [/\/dist\/plugin\/capture\/(encode|canonical-json)/, 'canonical JSON'],
  [/\/dist\/plugin\/capture\/audit-id/, 'uuid'],
  [/\/dist\/plugin\/thread\//, 'audit thread messages'],
  [/\/dist\/plugin\/capture\//, 'capture'],
  [/\/dist\/plugin\/pipeline\//, 'pipeline (batcher)'],
  [/\/dist\/plugin\/handler/, 'handler'],
  [/\/dist\/plugin\/telemetry\//, 'tracing (OpenTelemetry)'],
  [/\/dist\/plugin\//, 'plugin (other)'],
  [/node_modules\/canonicalize\//, 'canonical JSON'],
  [/node_modules\/uuid\//, 'uuid'],
  [/node_modules\/@grpc\/proto-loader\//, 'protobuf'],
  [/node_modules\/(@protobufjs|protobufjs)\//, 'protobuf'],
  [/node_modules\/@grpc\/grpc-js\//, 'gRPC'],
  [/node_modules\/@msgpack\//, 'msgpack (plugin server RPC)'],
  [/node_modules\/@opentelemetry\//, 'tracing (OpenTelemetry)'],
  [/node_modules\/kong-pdk\//, 'kong-pdk (plugin server RPC)'],
  [/\/dist\/bench\//, 'bench probe'],
];

const SPECIAL: Record<string, string> = {
  '(idle)': 'idle',
  '(garbage collector)': 'GC',
  '(program)': 'V8/native (unattributed)',
  '(root)': 'V8/native (unattributed)',
};

export function categoryOfUrl(url: string): string | null {
  for (const [re, cat] of CATEGORY_RULES) if (re.test(url)) return cat;
  if (url.startsWith('node:')) return null;
  return url ? 'other JS' : null;
}

export interface FrameTime {
  frame: string;
  category: string;
  ms: number;
  share: number;
}

export interface ProfileSummary {
  totalMs: number;
  /** Time not idle (total minus "(idle)"). */
  busyMs: number;
  /** Per category, ms and share of busy time, largest first (idle excluded). */
  categories: Array<{ category: string; ms: number; share: number }>;
  /** Largest self times, with the category they were attributed to. */
  topSelf: FrameTime[];
  /** Inclusive time (self + callees) of selected functions, by name. */
  inclusive: Array<{ function: string; ms: number; share: number }>;
}

function frameLabel(cf: CallFrame): string {
  const name = cf.functionName || '(anonymous)';
  if (!cf.url) return name;
  const file = cf.url.replace(/^file:\/\//, '').replace(/^.*\/(node_modules\/|dist\/)/, '$1');
  return `${name} ${file}:${cf.lineNumber + 1}`;
}

/**
 * Self time per node: each sample is charged the interval until the next sample (the last one
 * the mean interval); without samples, hitCount times the mean interval.
 */
export function selfTimes(p: CpuProfile): Map<number, number> {
  const self = new Map<number, number>();
  const totalUs = p.endTime - p.startTime;
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  if (samples.length > 0 && deltas.length === samples.length) {
    const mean = totalUs / samples.length;
    for (let i = 0; i < samples.length; i++) {
      const dt = i + 1 < deltas.length ? deltas[i + 1]! : mean;
      self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + Math.max(0, dt));
    }
  } else {
    const hits = p.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0);
    const per = hits ? totalUs / hits : 0;
    for (const n of p.nodes) if (n.hitCount) self.set(n.id, n.hitCount * per);
  }
  for (const [k, v] of self) self.set(k, v / 1000);
  return self;
}

export function summarizeProfile(p: CpuProfile, opts: { top?: number; inclusive?: string[] } = {}): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = selfTimes(p);

  const catCache = new Map<number, string>();
  const categoryOf = (id: number): string => {
    const cached = catCache.get(id);
    if (cached) return cached;
    const n = byId.get(id)!;
    let cat = SPECIAL[n.callFrame.functionName] && !n.callFrame.url ? SPECIAL[n.callFrame.functionName]! : categoryOfUrl(n.callFrame.url);
    if (cat === null) {
      const up = parent.get(id);
      cat = up === undefined ? 'V8/native (unattributed)' : categoryOf(up);
      // A builtin called straight from the root belongs to no JS caller.
      if (cat === 'idle' || cat === 'GC') cat = 'V8/native (unattributed)';
    }
    catCache.set(id, cat);
    return cat;
  };

  let totalMs = 0;
  let idleMs = 0;
  const cats = new Map<string, number>();
  const frames = new Map<string, { category: string; ms: number }>();
  for (const [id, ms] of self) {
    totalMs += ms;
    const cat = categoryOf(id);
    if (cat === 'idle') {
      idleMs += ms;
      continue;
    }
    cats.set(cat, (cats.get(cat) ?? 0) + ms);
    const label = frameLabel(byId.get(id)!.callFrame);
    const fk = `${label}\u0000${cat}`;
    const f = frames.get(fk) ?? { category: cat, ms: 0 };
    f.ms += ms;
    frames.set(fk, f);
  }
  const busyMs = totalMs - idleMs;
  const share = (ms: number) => (busyMs > 0 ? ms / busyMs : 0);

  // Inclusive time per named function, counting a nested call of the same name once.
  const inclusive: ProfileSummary['inclusive'] = [];
  if (opts.inclusive?.length) {
    const wanted = new Set(opts.inclusive);
    const totals = new Map<string, number>();
    const walk = (id: number, active: Set<string>) => {
      const n = byId.get(id)!;
      const name = n.callFrame.functionName;
      const added = wanted.has(name) && !active.has(name);
      if (added) active.add(name);
      const ms = self.get(id) ?? 0;
      for (const a of active) totals.set(a, (totals.get(a) ?? 0) + ms);
      for (const c of n.children ?? []) walk(c, active);
      if (added) active.delete(name);
    };
    const roots = p.nodes.filter((n) => !parent.has(n.id));
    for (const r of roots) walk(r.id, new Set());
    for (const name of opts.inclusive) inclusive.push({ function: name, ms: totals.get(name) ?? 0, share: share(totals.get(name) ?? 0) });
  }

  return {
    totalMs,
    busyMs,
    categories: [...cats].map(([category, ms]) => ({ category, ms, share: share(ms) })).sort((a, b) => b.ms - a.ms),
    topSelf: [...frames]
      .map(([fk, f]) => ({ frame: fk.split('\u0000')[0]!, category: f.category, ms: f.ms, share: share(f.ms) }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, opts.top ?? 15),
    inclusive,
  };
}
