// The durable spool: where entries wait on local disk until immudb has proven them.
import type { KongFieldList } from '../kong-schema.js';

export interface SpoolConfig {
  /** Directory of the spool; null: $IMMUDB_AUDIT_SPOOL_DIR, else <data dir>/spool. */
  spool_dir: string | null;
  spool_max_bytes: number;
  spool_fsync: 'group' | 'off';
}

export const spoolFields: KongFieldList = [
  { spool_dir: { type: 'string', len_min: 1, description: 'Directory of the durable spool (default: $IMMUDB_AUDIT_SPOOL_DIR, else <IMMUDB_AUDIT_DATA_DIR>/spool). One spool per immudb destination (host, port, database) lives below it, shared by the configurations writing there; a changed spool_dir takes effect when the plugin server restarts (spool_max_bytes and spool_fsync at once).' } },
  { spool_max_bytes: { type: 'integer', required: true, default: 1073741824, between: [1048576, 1099511627776], description: 'Most bytes the spool may hold; when it is full (or the disk is), new entries are held in memory and written to immudb directly; lost only when immudb fails too and that memory is full, then counted, logged and recorded in a loss record.' } },
  { spool_fsync: { type: 'string', required: true, default: 'group', one_of: ['group', 'off'], description: "'group': an entry is fsynced before the log handler returns (one fsync covers many entries); 'off': written but not fsynced (survives a plugin server crash, not a power loss)." } },
];
