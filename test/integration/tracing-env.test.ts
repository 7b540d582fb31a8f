// The OTEL_* variables are read by OpenTelemetry's own code (resources' envDetector, core's
// environment readers, the batch span processor's options), not parsed by hand: through the
// real plugin server, what a variable says shows in what a collector receives.
import test from 'ava';
import { simulateWorkers } from '../helpers/kong-driver.js';
import { until } from '../helpers/until.js';
import { OtlpReceiver } from '../helpers/otlp-receiver.js';
import { buildFixture, SCENARIO_KINDS } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, startAuditStack, waitForEntries } from '../helpers/audit-stack.js';

test.serial('OTEL_RESOURCE_ATTRIBUTES and OTEL_BSP_MAX_EXPORT_BATCH_SIZE reach the exported spans', async (t) => {
  const receiver = await new OtlpReceiver().start();
  const stack = await startAuditStack({
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_SERVICE_NAME: 'kia-env',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=audit-test,service.namespace=gateway',
      OTEL_BSP_SCHEDULE_DELAY: '50',
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '1',
    },
  });
  t.teardown(async () => {
    await stack.dispose();
    await receiver.stop();
  });
  const [w] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({ key_prefix: 'env', queue: { max_coalescing_delay: 0.01 } }));
  for (let i = 0; i < 6; i++) {
    const f = buildFixture(SCENARIO_KINDS[i % SCENARIO_KINDS.length]!, 810_000 + i);
    await w!.runLogEvent({ 'kong.log.serialize': f.json });
  }
  await waitForEntries(await stack.client('defaultdb'), 'env:entry:', 6);
  // audit.write spans are roots (sampled by the default sampler); entry spans follow their request's flag.
  await until('spans to arrive', () => (receiver.spans.length >= 3 ? true : undefined), 60_000);
  const span = receiver.spans[0]!;
  t.like(span.resource, { 'service.name': 'kia-env', 'deployment.environment.name': 'audit-test', 'service.namespace': 'gateway' });
  // One span per export request: the processor took its batch size from the environment.
  t.true(receiver.requests >= receiver.spans.length, `${receiver.spans.length} spans came in ${receiver.requests} requests`);
});
