// Batching of writes. Names follow Kong's bundled loggers (kong/tools/queue_schema.lua) where
// the meaning is the same.
import type { KongFieldList } from '../kong-schema.js';

export interface QueueConfig {
  max_batch_size: number;
  max_coalescing_delay: number;
  max_entries: number;
  initial_retry_delay: number;
  max_retry_delay: number;
  /** Kong's queue vocabulary (docs/decisions.md #6): see the field descriptions. */
  max_bytes: number | null;
  concurrency_limit: number;
  max_retry_time: null;
}

export const queueFields: KongFieldList = [
  {
    queue: {
      type: 'record',
      description: 'Batching of writes: one immudb transaction per batch.',
      fields: [
        { max_batch_size: { type: 'integer', required: true, default: 256, between: [1, 512], description: 'Most audit entries in one immudb transaction. Each entry takes one or two immudb entries (the entry, and its trace index when the request brought its trace), and immudb allows 1024 per transaction by default.' } },
        { max_coalescing_delay: { type: 'number', required: true, default: 0.2, between: [0, 3600], description: 'Seconds to wait for more entries before writing a batch that is not full.' } },
        { max_entries: { type: 'integer', required: true, default: 10000, between: [1, 1000000], description: 'Most entries held in memory waiting for immudb; beyond that they wait in the durable spool only, so memory stays flat while immudb is down. Also the most entries held in memory while the spool cannot write (disk full or failing); any value drains.' } },
        { initial_retry_delay: { type: 'number', required: true, default: 0.1, between: [0.001, 1000000], description: 'Seconds before the first retry of a failed write.' } },
        { max_retry_delay: { type: 'number', required: true, default: 30, between: [0.001, 1000000], description: 'Longest delay between retries, seconds. Writes are retried until they succeed.' } },
        // Kong's bundled loggers' names (kong/tools/queue_schema.lua), so that a queue block copied from http-log is understood.
        { max_bytes: { type: 'integer', gt: 0, description: 'Most bytes of encoded entries held in memory waiting for immudb (with max_entries, whichever is reached first); beyond that they wait in the durable spool only. Unset: max_entries alone.' } },
        { concurrency_limit: { type: 'integer', required: true, default: 1, one_of: [1], err: 'must be 1: each destination has exactly one writer, because every transaction is proven against the state the previous one left (-1, writing without a queue, would skip the durable spool)', description: "Kong's name for the number of writers of a queue: always 1 here (one writer per destination, proofs chain from one transaction to the next)." } },
        { max_retry_time: { type: 'number', eq: null, err: 'is not supported: an audit entry is never given up; it stays in the durable spool and is retried until immudb has proven it (watch kong_immudb_audit_write_failing and oldest_unacked_seconds instead)', description: "Kong's loggers drop a batch after this many seconds of retries; an audit trail must not, so any value is refused with the reason." } },
      ],
    },
  },
];
