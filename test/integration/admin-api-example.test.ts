// examples/admin-api/configure.sh run as an operator runs it (bash, curl), against a stand-in for
// Kong's Admin API on loopback that answers as Kong does for these endpoints and validates each
// plugin configuration with the plugin's own validator (which refuses what Kong's schema check
// refuses, with the same messages: test/unit/kong-yml.test.ts). No Kong binary here.
import test from 'ava';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseConfig } from '../../plugin/config/config.js';
import { ConfigError } from '../../plugin/config/kong-schema.js';
import { projectRoot } from '../helpers/kong-driver.js';
import { run, describe } from '../helpers/packaging.js';

const body = (req: IncomingMessage) => new Promise<string>((r) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => r(Buffer.concat(chunks).toString()));
});

/** Kong merges a PATCHed config into the stored one, records included (kong/db/dao update). */
function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = v && typeof v === 'object' && !Array.isArray(v) && typeof a[k] === 'object' ? merge(a[k] as Record<string, unknown>, v as Record<string, unknown>) : v;
  return out;
}

test('examples/admin-api/configure.sh: every call is one Kong answers, every configuration valid, the refused one refused', async (t) => {
  const calls: string[] = [];
  const plugins = new Map<string, { name: string; config: Record<string, unknown> }>();
  const server = createServer(async (req, res) => {
    const text = await body(req);
    const call = `${req.method} ${req.url}`;
    calls.push(call);
    const answer = (code: number, json: unknown) => res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(json));
    const plugin = /^(PUT \/routes\/[^/]+\/plugins\/([^/]+)|POST \/(routes|consumers)\/[^/]+\/plugins|PATCH \/plugins\/([^/]+))$/.exec(call);
    if (!plugin) {
      if (/^PUT \/(services\/[^/]+(\/routes\/[^/]+)?|consumers\/[^/]+)$/.test(call)) return answer(200, {});
      return answer(404, { message: 'Not found' });
    }
    const sent = JSON.parse(text) as { name?: string; config?: Record<string, unknown> };
    const key = plugin[2] ?? plugin[4] ?? `post-${calls.length}`;
    const stored = plugins.get(key);
    if (req.method === 'PATCH' && !stored) return answer(404, { message: 'Not found' });
    const next = { name: sent.name ?? stored!.name, config: merge(stored?.config ?? {}, sent.config ?? {}) };
    if (next.name !== 'immudb-audit') return answer(400, { message: `plugin '${next.name}' not enabled` });
    try {
      parseConfig(next.config);
    } catch (e) {
      if (e instanceof ConfigError) return answer(400, { message: `schema violation (${e.message})` });
      throw e;
    }
    plugins.set(key, next);
    return answer(req.method === 'POST' ? 201 : 200, next);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const admin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const r = await run('bash', [join(projectRoot(), 'examples', 'admin-api', 'configure.sh')], { env: { ...process.env, KONG_ADMIN: admin }, timeoutMs: 60_000 });
  t.is(r.code, 0, describe(r));
  t.deepEqual(calls, [
    'PUT /services/payments',
    'PUT /services/payments/routes/payments',
    'PUT /routes/payments/plugins/immudb-audit-payments',
    'PUT /consumers/billing-batch',
    'POST /consumers/billing-batch/plugins',
    'PATCH /plugins/immudb-audit-payments',
    'PATCH /plugins/immudb-audit-payments',
  ]);
  t.regex(r.stdout, /pseudonyms without a key: HTTP 400 \(400 expected\)/);
  t.regex(r.stderr, /privacy\.pseudonymize needs the secret 'pseudonym_key'/);
  t.is(plugins.get('immudb-audit-payments')?.config.immudb_password, '{vault://env/immudb-audit-password-2}', 'the rotation reached the stored configuration');
});
