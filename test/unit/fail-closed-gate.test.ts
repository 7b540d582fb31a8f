// The gate of fail-closed routes (plugin/pipeline/fail-closed-gate.ts) from a pipeline's state:
// which condition closes it, strict bounds, one log line per change per destination, and a gate
// dropped with its instance. (The real plugin server and immudb: test/integration/fail-closed.test.ts.)
import test from 'ava';
import { createLogger } from '../../plugin/log.js';
import type { AuditPipeline } from '../../plugin/pipeline/audit-pipeline.js';
import {
  FailClosedWatch, GATE_BACKLOG, GATE_BACKLOG_AGE, GATE_HALTED, GATE_OPEN, GATE_SPOOL_REFUSING, gateReason,
} from '../../plugin/pipeline/fail-closed-gate.js';

function pipeline(state: { halted?: Error; spoolRefusing?: boolean; spool?: number; held?: number; oldestMs?: number | null } = {}) {
  const p = {
    writer: { halted: state.halted },
    spoolRefusing: state.spoolRefusing ?? false,
    snapshot: () => ({ spool_entries: state.spool ?? 0, held_memory: state.held ?? 0, oldest_unacked_ms: state.oldestMs ?? null }),
  };
  return p as unknown as AuditPipeline & { spoolRefusing: boolean; writer: { halted: Error | undefined } };
}

const bounds = { enabled: true, max_backlog: 10, max_backlog_age: 2 };

test('each condition closes the gate; the bounds are passed, not reached', (t) => {
  t.is(gateReason(pipeline(), bounds), GATE_OPEN);
  t.is(gateReason(pipeline({ halted: new Error('x'), spoolRefusing: true, spool: 99 }), bounds), GATE_HALTED);
  t.is(gateReason(pipeline({ spoolRefusing: true }), bounds), GATE_SPOOL_REFUSING);
  t.is(gateReason(pipeline({ spool: 6, held: 4 }), bounds), GATE_OPEN);
  t.is(gateReason(pipeline({ spool: 6, held: 5 }), bounds), GATE_BACKLOG);
  t.is(gateReason(pipeline({ spool: 1, oldestMs: 2000 }), bounds), GATE_OPEN);
  t.is(gateReason(pipeline({ spool: 1, oldestMs: 2001 }), bounds), GATE_BACKLOG_AGE);
});

test('the watch sets the flag at once and on every tick, logs each change once per destination, and stops with the last gate', async (t) => {
  const lines: string[] = [];
  const watch = new FailClosedWatch(createLogger('fail-closed', (l) => lines.push(l)));
  const p = pipeline();
  const a = new Int32Array(new SharedArrayBuffer(4));
  const b = new Int32Array(new SharedArrayBuffer(4));
  const removeA = watch.add(p, bounds, a, 'h:1/db');
  const removeB = watch.add(p, bounds, b, 'h:1/db');
  t.is(Atomics.load(a, 0), GATE_OPEN);
  p.spoolRefusing = true;
  const deadline = Date.now() + 10_000;
  while ((Atomics.load(a, 0) !== GATE_SPOOL_REFUSING || Atomics.load(b, 0) !== GATE_SPOOL_REFUSING) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.is(Atomics.load(b, 0), GATE_SPOOL_REFUSING);
  p.spoolRefusing = false;
  while (Atomics.load(a, 0) !== GATE_OPEN && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.is(lines.filter((l) => /answer 503: the spool refuses entries/.test(l)).length, 1, lines.join('\n'));
  t.is(lines.filter((l) => /are served again/.test(l)).length, 1);
  removeA();
  removeB();
  t.is(watch.size, 0);
});
