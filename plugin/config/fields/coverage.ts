// Coverage an auditor can prove: how often the plugin writes a heartbeat lifecycle entry, so that
// `verify --all` and `search` can report periods with no entries and no heartbeat (decisions #31).
import type { KongFieldList } from '../kong-schema.js';

export interface CoverageConfig {
  /** Seconds between heartbeat lifecycle entries per key prefix; 0: none. */
  heartbeat_interval: number;
}

export const coverageFields: KongFieldList = [
  { heartbeat_interval: { type: 'number', required: true, default: 300, between: [0, 86400], description: "Seconds between heartbeat lifecycle entries (<key_prefix>:lifecycle:<id>, event 'heartbeat') while the plugin server runs; 0: none. `verify --all` and `search` report a period longer than twice this with neither entries nor a heartbeat from a node as a silent period. One heartbeat per key prefix of a destination (the first configuration's setting applies)." } },
];
