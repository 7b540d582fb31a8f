// OpenTelemetry per route: whether to emit audit spans. Exporter settings are process-wide and
// come from the standard OTEL_* environment variables.
import type { KongFieldList } from '../kong-schema.js';

export interface TracingConfig {
  tracing: {
    enabled: boolean;
    record_client_address: boolean;
  };
}

export const tracingFields: KongFieldList = [
  {
    tracing: {
      type: 'record',
      description: 'OpenTelemetry spans linking each audit entry and its immudb transaction to the request trace.',
      fields: [
        { enabled: { type: 'boolean', required: true, default: true, description: 'Emit an audit span per entry and a span per immudb batch (exported over OTLP/HTTP as configured by OTEL_* variables).' } },
        { record_client_address: { type: 'boolean', required: true, default: false, description: "Put the client address (as stored in the entry, after pseudonymisation) on the audit span as client.address. Off by default: traces are often kept with fewer safeguards than the audit trail." } },
      ],
    },
  },
];
