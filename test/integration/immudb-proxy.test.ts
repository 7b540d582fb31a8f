// The fault proxy itself, against a real immudb: a faithful pass-through (sessions, the server's
// identity header), and hooks that forge answers and errors, alter forwarded ones, or drop calls.
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { startImmudb } from '../../scripts/lib/immudb-server.js';
import { ImmudbClient, isKeyExistsError } from '../../plugin/store/immudb-client.js';
import { startImmudbProxy } from '../helpers/immudb-proxy.js';

test('passes calls through with their metadata; hooks forge, alter and drop answers', async (t) => {
  const immudb = await startImmudb();
  const proxy = await startImmudbProxy(immudb);
  const conn = { username: immudb.username, password: immudb.password, database: 'defaultdb', callTimeoutMs: 2_000 };
  const direct = await ImmudbClient.connect({ ...conn, host: immudb.host, port: immudb.port });
  const via = await ImmudbClient.connect({ ...conn, host: proxy.host, port: proxy.port });
  try {
    t.is(via.serverUuid, direct.serverUuid, "the server's identity reaches the client");
    t.truthy(proxy.lastHeaders().get('immudb-uuid')[0]);
    await via.set([{ key: Buffer.from('k1'), value: Buffer.from('v1') }]);
    t.deepEqual((await direct.get(Buffer.from('k1'))).value, Buffer.from('v1'));
    t.true((proxy.calls.OpenSession ?? 0) >= 1 && proxy.calls.Set === 1);

    // A real precondition failure passes through as immudb sent it.
    const real = await t.throwsAsync(via.verifiableSet([{ key: Buffer.from('k1'), value: Buffer.from('x') }], 0, [{ keyMustNotExist: { key: Buffer.from('k1') } }]));
    t.true(isKeyExistsError(real), real?.message);

    // Forged answers: an error for a write, a value for a read (the request is visible).
    proxy.hook('VerifiableSet', () => ({ error: { code: grpc.status.UNKNOWN, details: 'forged' } }));
    proxy.hook('Get', ({ request }) => ({ response: { tx: '7', key: request.key, value: Buffer.from(`forged ${request.key.toString()}`), revision: '1' } }));
    await t.throwsAsync(via.verifiableSet([{ key: Buffer.from('k2'), value: Buffer.from('v2') }], 0), { message: /forged/ });
    const forged = await via.get(Buffer.from('k2'));
    t.is(forged.value.toString(), 'forged k2');
    t.is(forged.tx, '7');

    // Altered: forwarded, then changed.
    proxy.hook('Get', async ({ forward }) => {
      const up = await forward();
      if (up.error) return up;
      return { response: { ...up.response, value: Buffer.from('altered') } };
    });
    t.is((await via.get(Buffer.from('k1'))).value.toString(), 'altered');

    // Dropped: the caller's deadline ends the call.
    proxy.hook('Get', () => ({ drop: true }));
    await t.throwsAsync(via.get(Buffer.from('k1')), { message: /deadline/i });

    proxy.clearHooks();
    t.is((await via.get(Buffer.from('k1'))).value.toString(), 'v1');
    t.is((await direct.txScan(1, 100)).length, (await via.txScan(1, 100)).length);
  } finally {
    await via.close().catch(() => undefined);
    await direct.close();
    await proxy.close();
    await immudb.dispose();
  }
});
