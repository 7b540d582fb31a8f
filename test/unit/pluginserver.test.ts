// immudb-audit-pluginserver's listener pieces: MessagePack stream framing and the debug line.
import test from 'ava';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { ExtData, decode, encode } from '@msgpack/msgpack';
import { FrameSplitter, FramingError, valueEnd } from '../../plugin/pluginserver/frames.js';
import { Listener } from '../../plugin/pluginserver/listener.js';
import { kongPdk, type KongPdkLogger, type KongPdkServer } from '../../plugin/pluginserver/kong-pdk.js';

const anyValue = fc.oneof(
  fc.anything({ withMap: false, withSet: false, withBigInt: false, withDate: false, withTypedArray: false, withSparseArray: false, withNullPrototype: false, withBoxedValues: false, withObjectString: false }),
  fc.string({ minLength: 200, maxLength: 400 }).map((x) => x.repeat(200)), // str16/str32
  fc.uint8Array({ maxLength: 300 }), // bin8/bin16
  fc.array(fc.integer(), { minLength: 16, maxLength: 70 }), // array16
  fc.double(),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }).map((n) => Number(n)),
);

test('valueEnd finds the end of every encoded value exactly, and a lower bound on any prefix', (t) => {
  fc.assert(
    fc.property(anyValue, (v) => {
      const bytes = encode(v);
      if (valueEnd(bytes, 0) !== bytes.length) return false;
      for (const cut of [0, 1, 2, 3, 5, 9, Math.floor(bytes.length / 2), bytes.length - 1]) {
        if (cut < 0 || cut >= bytes.length) continue;
        const need = valueEnd(bytes.subarray(0, cut), 0);
        if (!(need > cut && need <= bytes.length)) return false;
      }
      return true;
    }),
    { numRuns: 200 },
  );
  t.pass();
});

test('FrameSplitter returns the pipelined values whatever the chunk boundaries', (t) => {
  fc.assert(
    fc.property(fc.array(anyValue, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 12 }), (values, cuts) => {
      const parts = values.map((v) => Buffer.from(encode(v)));
      const stream = Buffer.concat(parts);
      const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
      const splitter = new FrameSplitter();
      const got: Buffer[] = [];
      let prev = 0;
      for (const p of [...points, stream.length]) {
        got.push(...splitter.push(stream.subarray(prev, p)));
        prev = p;
      }
      return got.length === parts.length && got.every((g, i) => g.equals(parts[i]!));
    }),
    { numRuns: 150 },
  );
  t.pass();
});

test('ext and fixext values are framed (types kong-pdk never sends, but a stream may hold)', (t) => {
  for (const size of [1, 2, 4, 8, 16, 3, 300, 70_000]) {
    const data = new Uint8Array(size);
    const bytes = encode([new ExtData(5, data), 1]);
    t.is(valueEnd(bytes, 0), bytes.length, `ext of ${size}`);
  }
});

test('a byte MessagePack never uses is a FramingError', (t) => {
  t.throws(() => valueEnd(Uint8Array.from([0x92, 0xc1, 0x01]), 0), { instanceOf: FramingError });
});

const require = createRequire(import.meta.url);

function spyLogger(): KongPdkLogger & { debugs: string[] } {
  const debugs: string[] = [];
  return { debugs, setLevel() {}, debug: (...a: unknown[]) => void debugs.push(a.join(' ')), info() {}, warn() {}, error() {} };
}

/** Serves `listener`-like objects on a temp socket, sends one request, returns the decoded reply. */
async function oneRequest(serve: (sock: string) => net.Server, request: unknown[]): Promise<unknown> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ps-unit-'));
  const sock = path.join(dir, 's.sock');
  const server = serve(sock);
  await new Promise<void>((r) => (server.listening ? r() : server.once('listening', () => r())));
  try {
    return await new Promise((resolve, reject) => {
      const c = net.connect(sock, () => c.write(encode(request)));
      const frames = new FrameSplitter();
      c.on('data', (b: Buffer) => {
        const [f] = frames.push(b);
        if (f) {
          c.destroy();
          resolve(decode(f));
        }
      });
      c.on('error', reject);
    });
  } finally {
    await new Promise((r) => server.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function fakeServer(logger: KongPdkLogger): KongPdkServer & { Echo(x: unknown): Promise<unknown> } {
  return {
    getLogger: () => logger,
    getPlugins: () => new Map(),
    GetPluginInfo: async () => ({}),
    close() {},
    Echo: async (x: unknown) => x,
  };
}

const BIG_ARG = { log: 'x'.repeat(2048) };

test('kong-pdk 0.6.0 quirk: its listener JSON-stringifies every request at info level too', async (t) => {
  const UpstreamListener = require('kong-pdk/listener.js') as new (ps: unknown, sock: string) => { serve(): net.Server };
  const logger = spyLogger();
  const reply = await oneRequest((sock) => new UpstreamListener(fakeServer(logger), sock).serve(), [0, 1, 'plugin.Echo', [BIG_ARG]]);
  t.deepEqual(reply, [1, 1, null, BIG_ARG]);
  t.is(logger.debugs.length, 1, 'the line is built and handed to logger.debug, which drops it at info level');
  t.true(logger.debugs[0]!.includes(JSON.stringify([BIG_ARG])));
});

test('our listener builds the rpc debug line only at debug level', async (t) => {
  for (const debug of [false, true]) {
    const logger = spyLogger();
    const reply = await oneRequest((sock) => new Listener(fakeServer(logger), sock, kongPdk.msgpack, { debug }).serve(), [0, 1, 'plugin.Echo', [BIG_ARG]]);
    t.deepEqual(reply, [1, 1, null, BIG_ARG]);
    t.deepEqual(logger.debugs, debug ? [`rpc: #1 method: plugin.Echo args: ${JSON.stringify([BIG_ARG])}`] : []);
  }
});
