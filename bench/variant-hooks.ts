// Preloaded into a plugin server under benchmark when BENCH_VARIANT is set (never in
// production): swaps modules of the built plugin for the proposed versions in
// bench/experiments/, so a proposed hot-path change is measured end to end through the real
// plugin server without touching plugin/. BENCH_VARIANT is a comma list of ("all": every one):
//   fast-json    capture/encode.js      -> experiments/encode-fast.js   (canonicalJson + compact record)
//   compact-record capture/encode.js    -> experiments/encode-compact.js (key+value in one exact allocation)
//   fast-uuid    'uuid' in handler.js   -> experiments/uuid7.js         (pooled randomness)
//   verify-once  proofs/index.js        -> experiments/proofs-fast.js   (one-pass batch check)
//   async-state  store/trusted-state.js -> experiments/trusted-state-async.js (off the event loop)
//   writer-thread store/audit-writer.js -> experiments/audit-writer-worker.js (writer in a worker thread)
//   handler-thread handler.js           -> experiments/handler-thread.js (all but the PDK call in a worker thread)
import { registerHooks } from 'node:module';
import { isMainThread } from 'node:worker_threads';

const variants = new Set((process.env.BENCH_VARIANT ?? '').split(',').map((s) => s.trim()).filter(Boolean));
const experiments = new URL('./experiments/', import.meta.url).href;
const plugin = new URL('../plugin/', import.meta.url).href;

interface Redirect {
  variant: string;
  /** Resolved URL (under dist/plugin/) to replace, or a bare specifier with its importer. */
  url?: string;
  specifier?: string;
  importer?: string;
  to: string;
}

const redirects: Redirect[] = [
  { variant: 'fast-json', url: `${plugin}capture/encode.js`, to: `${experiments}encode-fast.js` },
  { variant: 'compact-record', url: `${plugin}capture/encode.js`, to: `${experiments}encode-compact.js` },
  { variant: 'fast-uuid', specifier: 'uuid', importer: `${plugin}handler.js`, to: `${experiments}uuid7.js` },
  { variant: 'verify-once', url: `${plugin}store/proofs/index.js`, to: `${experiments}proofs-fast.js` },
  { variant: 'async-state', url: `${plugin}store/trusted-state.js`, to: `${experiments}trusted-state-async.js` },
  { variant: 'writer-thread', url: `${plugin}store/audit-writer.js`, to: `${experiments}audit-writer-worker.js` },
  { variant: 'handler-thread', url: `${plugin}handler.js`, importer: new URL('../kong-plugins/immudb-audit.js', plugin).href, to: `${experiments}handler-thread.js` },
].filter((r) => variants.has(r.variant) || variants.has('all'));
// (With both fast-json and compact-record asked for, fast-json's module, which includes compact records, wins: first match.)

const unknown = [...variants].filter((v) => v !== 'all' && !['fast-json', 'compact-record', 'fast-uuid', 'verify-once', 'async-state', 'writer-thread', 'handler-thread'].includes(v));
if (unknown.length) throw new Error(`BENCH_VARIANT: unknown variant(s) ${unknown.join(', ')}`);

const reported = new Set<string>();

// Hooks are per thread; a worker thread started by a variant (writer-thread) gets them too, so
// the proposals compose (e.g. the one-pass proof check inside the writer thread).
if (redirects.length) {
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const res = nextResolve(specifier, context);
      // The experiments themselves import the originals.
      if (context.parentURL?.startsWith(experiments)) return res;
      for (const r of redirects) {
        const hit = r.url
          ? res.url === r.url && (!r.importer || context.parentURL === r.importer)
          : specifier === r.specifier && context.parentURL === r.importer;
        if (hit) {
          if (!reported.has(r.variant) && isMainThread) {
            reported.add(r.variant);
            process.stderr.write(`bench variant ${r.variant}: ${r.url ?? r.specifier} -> ${r.to}\n`);
          }
          return { ...res, url: r.to, format: 'module', shortCircuit: true };
        }
      }
      return res;
    },
  });
}
