// The shape of Kong's `kong.log.serialize()` output (Kong 3.x), the boundary between Kong and
// this plugin. Every field is optional here: the plugin must survive whatever arrives.

export interface KongEntityRef {
  id?: string;
  name?: string;
  [k: string]: unknown;
}

export interface KongConsumer {
  id?: string;
  username?: string;
  custom_id?: string;
  [k: string]: unknown;
}

export interface KongSerializedLog {
  request?: {
    id?: string;
    uri?: string;
    url?: string;
    querystring?: Record<string, unknown>;
    method?: string;
    headers?: Record<string, string | string[]>;
    size?: number;
    tls?: { version?: string; cipher?: string; client_verify?: string };
  };
  upstream_uri?: string;
  upstream_status?: string | number;
  response?: { status?: number; headers?: Record<string, string | string[]>; size?: number };
  latencies?: { kong?: number; proxy?: number; request?: number; receive?: number };
  tries?: unknown[];
  authenticated_entity?: { id?: string; consumer_id?: string };
  route?: KongEntityRef;
  service?: KongEntityRef;
  consumer?: KongConsumer;
  client_ip?: string;
  started_at?: number;
  source?: string;
  workspace?: string;
  workspace_name?: string;
  trace_id?: Record<string, string> | string;
  [k: string]: unknown;
}

/** The part of Kong's PDK the plugin uses (its log phase). */
export interface KongLogPdk {
  log: { serialize(): Promise<unknown> };
}

/** What kong.log.serialize() returned, or the message of its failure (then raw is null). */
export async function serializeLog(kong: KongLogPdk): Promise<{ raw: unknown; failure?: string }> {
  try {
    return { raw: await kong.log.serialize() };
  } catch (e) {
    return { raw: null, failure: (e as Error).message };
  }
}
