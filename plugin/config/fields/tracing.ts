// OpenTelemetry per route: whether to emit audit spans. Exporter settings are process-wide and
// come from the standard OTEL_* environment variables.
import type { KongFieldList } from '../kong-schema.js';

export interface TracingConfig {
  tracing: {
    enabled: boolean;
  };
}

export const tracingFields: KongFieldList = [
  {
    tracing: {
      type: 'record',
      description: 'OpenTelemetry spans linking each audit entry and its immudb transaction to the request trace.',
      fields: [
        { enabled: { type: 'boolean', required: true, default: true, description: 'Emit an audit span per entry and a span per immudb batch (exported over OTLP/HTTP as configured by OTEL_* variables).' } },
      ],
    },
  },
];
