// The plugin's configuration schema, in Kong's schema language: what kong.yml may set on the
// plugin. `GetPluginInfo` hands it to Kong, which validates kong.yml against it. Each group of
// fields lives in fields/ with the TypeScript type it produces.
import type { KongFieldList } from './kong-schema.js';
import { connectionFields } from './fields/connection.js';
import { queueFields } from './fields/queue.js';
import { spoolFields } from './fields/spool.js';
import { tracingFields } from './fields/tracing.js';
import { privacyFields } from './fields/privacy.js';
import { tlsFields } from './fields/tls.js';
import { failClosedFields } from './fields/fail-closed.js';
import { coverageFields } from './fields/coverage.js';

export const configFields: KongFieldList = [...connectionFields, ...queueFields, ...spoolFields, ...tracingFields, ...privacyFields, ...tlsFields, ...failClosedFields, ...coverageFields];
