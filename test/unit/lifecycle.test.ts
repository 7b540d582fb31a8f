// Lifecycle entries of a destination (plugin/pipeline/lifecycle.ts) on a stand-in pipeline: what
// is recorded at start, for configurations, writer state changes, heartbeats and the stop.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PipelineCoverage } from '../../plugin/pipeline/lifecycle.js';
import type { AuditPipeline } from '../../plugin/pipeline/audit-pipeline.js';
import { parseConfig } from '../../plugin/config/config.js';
import { createLogger } from '../../plugin/log.js';
import { keyPrefixOf } from '../../plugin/pipeline/loss-record.js';

type Json = Record<string, unknown>;

function standIn(t: { teardown: (f: () => void) => void }, recovery = { pending: 0, missing: 0, damagedRegions: 0, damagedBytes: 0 }) {
  const dir = mkdtempSync(join(tmpdir(), 'kia-lifecycle-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const submitted: Array<{ key: string; json: Json; lifecycle: boolean }> = [];
  let state: 'writing' | 'retrying' | 'halted' = 'writing';
  const pipeline = {
    spool: { dir, recovery },
    health: { snapshot: () => ({ state, last_error: state === 'writing' ? null : 'boom', last_error_kind: state === 'halted' ? 'verification' : state === 'retrying' ? 'transient' : null }) },
    writer: { get halted() { return state === 'halted' ? new Error('boom') : undefined; } },
    submit: (rec: { key: Buffer; value: Buffer }, _span: unknown, lifecycle: boolean) => {
      submitted.push({ key: rec.key.toString(), json: JSON.parse(rec.value.toString()) as Json, lifecycle });
      return Promise.resolve(true);
    },
  } as unknown as AuditPipeline;
  const cov = new PipelineCoverage(pipeline, { nodeId: 'kong-7', hostname: 'h' }, createLogger('test', () => undefined));
  return { cov, submitted, dir, setState: (s: typeof state) => (state = s), poll: () => (cov as unknown as { watchHealth(): void }).watchHealth() };
}

const config = (over: Json = {}) => parseConfig({ immudb_username: 'u', immudb_password: 'secret-pw', key_prefix: 'p', heartbeat_interval: 0, ...over });

test('started, spool_damage and config_loaded once per configuration, numbered in the prefix stream', async (t) => {
  const { cov, submitted } = standIn(t, { pending: 2, missing: 3, damagedRegions: 1, damagedBytes: 40 });
  cov.configLoaded(config(), { route_id: 'r1', __plugin_id: 'pl1' });
  cov.configLoaded(config(), { route_id: 'r1' }); // another worker, same configuration
  cov.configLoaded(config({ tracing: { enabled: false } }), { route_id: 'r1' });
  t.is(cov.number('p', 0)!.number, 5);
  await cov.stop();
  t.deepEqual(submitted.map((s) => [s.key.split(':').slice(0, 2).join(':'), s.json.event, (s.json.sequence as Json).number, s.lifecycle]), [
    ['p:lifecycle', 'started', 1, true],
    ['p:lifecycle', 'spool_damage', 2, true],
    ['p:lifecycle', 'config_loaded', 3, true],
    ['p:lifecycle', 'config_loaded', 4, true],
    ['p:lifecycle', 'stopping', 6, true],
  ]);
  const started = submitted[0]!.json;
  t.like(started, { node_id: 'kong-7', hostname: 'h', previous_run: null, heartbeat_seconds: 0, spool: { pending: 2, missing: 3, damaged_regions: 1, damaged_bytes: 40 } });
  t.is(typeof started.pid, 'number');
  t.like(submitted[1]!.json, { missing_records: 3, damaged_regions: 1, damaged_bytes: 40 });
  t.like(submitted[2]!.json, { route_id: 'r1', plugin_id: 'pl1', previous_config_hash: null });
  t.is(submitted[3]!.json.previous_config_hash, submitted[2]!.json.config_hash);
  t.not(submitted[3]!.json.config_hash, submitted[2]!.json.config_hash);
  t.false(JSON.stringify(submitted).includes('secret-pw'));
});

test('writer state changes: failing, resumed, halted', (t) => {
  const { cov, submitted, setState, poll } = standIn(t);
  cov.number('p', 0);
  poll();
  setState('retrying');
  poll();
  poll();
  setState('writing');
  poll();
  setState('halted');
  poll();
  t.deepEqual(submitted.map((s) => s.json.event), ['started', 'writer_failing', 'writer_resumed', 'writer_halted']);
  t.like(submitted[1]!.json, { error: 'boom', error_kind: 'transient' });
  t.like(submitted[2]!.json, { was: 'retrying' });
  t.like(submitted[3]!.json, { error: 'boom', error_kind: 'verification' });
  void cov.stop();
});

test('heartbeats at the configured interval, with the numbers handed out since the last', async (t) => {
  const { cov, submitted } = standIn(t);
  cov.number('p', 0.2);
  cov.number('p', 0.2);
  const deadline = Date.now() + 30_000;
  while (submitted.filter((s) => s.json.event === 'heartbeat').length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await cov.stop();
  const beats = submitted.filter((s) => s.json.event === 'heartbeat');
  t.true(beats.length >= 2);
  t.is(beats[0]!.json.numbered_since_last, 2, 'two entries numbered after the started entry');
  t.is(beats[1]!.json.numbered_since_last, 0);
});

test('a lifecycle entry lost with the spool and immudb down is counted under its own prefix', (t) => {
  // Before: keyPrefixOf knew entry keys only, and the loss record went to ':loss:<id>'.
  t.is(keyPrefixOf(Buffer.from('p:lifecycle:01a235c1-1d33-75dc-83c9-433cf2f26506')), 'p');
  t.is(keyPrefixOf(Buffer.from('p:entry:01a235c1-1d33-75dc-83c9-433cf2f26506')), 'p');
});
