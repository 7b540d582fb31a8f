// Fail-closed routes (docs/decisions.md #32): while auditing cannot keep up, the route answers
// 503 instead of serving requests whose audit entries might never reach immudb.
import type { KongFieldList } from '../kong-schema.js';

export interface FailClosedConfig {
  fail_closed: {
    enabled: boolean;
    max_backlog: number;
    max_backlog_age: number;
  };
}

export const failClosedFields: KongFieldList = [
  {
    fail_closed: {
      type: 'record',
      description: "Answer 503 on this route while its audit destination cannot take entries. Needs the plugin server started with IMMUDB_AUDIT_FAIL_CLOSED=on (Kong must see the plugin's access phase; docs/operations.md, \"Fail-closed routes\"). Off: the route is served whatever happens to auditing (fail-open, with alerts).",
      fields: [
        { enabled: { type: 'boolean', required: true, default: false, description: 'Answer 503 (JSON body, Retry-After) while the destination is halted by a trust failure, its spool refuses entries (disk full or failing), or its backlog passes max_backlog or max_backlog_age; requests are served again as soon as none holds.' } },
        { max_backlog: { type: 'integer', required: true, default: 100000, between: [1, 1000000000], description: 'Most audit entries of the destination not yet proven in immudb (in the spool or held in memory) before its fail-closed routes answer 503.' } },
        { max_backlog_age: { type: 'number', required: true, default: 60, between: [0.1, 86400], description: 'Most seconds the oldest entry not yet proven in immudb may wait before the destination\'s fail-closed routes answer 503.' } },
      ],
    },
  },
];
