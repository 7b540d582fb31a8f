// Tracing exports only where an endpoint is configured: with no OTEL_EXPORTER_OTLP_(TRACES_)
// ENDPOINT and no OTEL_TRACES_EXPORTER=otlp there is no exporter (nothing sent to
// 127.0.0.1:4318, no "connect ECONNREFUSED"), one info line says so, and entries still carry
// trace ids.
import test from 'ava';
import { simulateWorkers } from '../helpers/kong-driver.js';
import { generateFixtures } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, startAuditStack, waitForEntries } from '../helpers/audit-stack.js';
import { exporterFromEnv } from '../../plugin/telemetry/tracing.js';

const lookup = (env: Record<string, string>) => (name: string) => env[name]?.trim() || undefined;

test('exporterFromEnv: OTLP only where an endpoint or OTEL_TRACES_EXPORTER=otlp says so', (t) => {
  t.is(exporterFromEnv(lookup({})), 'none');
  t.is(exporterFromEnv(lookup({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })), 'otlp');
  t.is(exporterFromEnv(lookup({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' })), 'otlp');
  t.is(exporterFromEnv(lookup({ OTEL_TRACES_EXPORTER: 'otlp' })), 'otlp');
  t.is(exporterFromEnv(lookup({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })), 'none');
  t.is(exporterFromEnv(lookup({ OTEL_EXPORTER_OTLP_ENDPOINT: '' })), 'none');
});

test('no OTEL_* variable: no exporter, one quiet info line, entries still traced', async (t) => {
  const env: NodeJS.ProcessEnv = { OTEL_BSP_SCHEDULE_DELAY: '50' };
  for (const k of Object.keys(process.env)) if (k.startsWith('OTEL_') && k !== 'OTEL_BSP_SCHEDULE_DELAY') env[k] = '';
  const stack = await startAuditStack({ env });
  t.teardown(() => stack.dispose());
  const [w] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({ key_prefix: 'td', queue: { max_coalescing_delay: 0.01 } }));
  for (const f of generateFixtures(5, { seed: 3 })) await w!.runLogEvent({ 'kong.log.serialize': f.json });
  const entries = await waitForEntries(await stack.client('defaultdb'), 'td:entry:', 5);
  t.true(entries.every((e) => /^[0-9a-f]{32}$/.test((JSON.parse(e.value.toString()) as { trace_id: string }).trace_id)), 'entries carry trace ids');
  // Several export intervals pass (50 ms each) while the server would have tried to export.
  await new Promise((r) => setTimeout(r, 1_000));
  const logs = stack.server.logs();
  t.notRegex(logs, /ECONNREFUSED|4318/);
  t.is(logs.match(/tracing: no OTEL_EXPORTER_OTLP_ENDPOINT/g)?.length ?? 0, 1, logs.slice(-3000));
});
