// The trusted state file (decisions #44): two copies overwritten in place, so a save needs no new
// blocks (it works on a full disk) and a save torn by a crash falls back to the state before it;
// the JSON file of earlier versions is still read, and replaced by the first save.
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync, openSync, writeSync, closeSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrustedStateStore, type TrustedState } from '../../plugin/store/trusted-state.js';
import { tmpfsFor } from '../helpers/tmpfs.js';

const alh = (n: number) => createHash('sha256').update(`alh ${n}`).digest();
const state = (txId: number): TrustedState => ({ log: 'db', database: 'db', txId, alh: alh(txId), serverUuid: 'srv-1', durable: undefined });

function tempDir(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'kia-tstate-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a save works on a full disk: the file is overwritten in place, no new blocks', async (t) => {
  const mnt = tmpfsFor(t, '1m');
  if (!mnt) return;
  const store = new TrustedStateStore(mnt);
  await store.save(state(1));
  // Fill the disk to the last byte.
  const fd = openSync(join(mnt, 'filler'), 'w');
  try {
    const chunk = Buffer.alloc(64 * 1024, 1);
    for (let size = chunk.length; size >= 1; size = Math.floor(size / 2)) {
      for (;;) {
        try {
          writeSync(fd, chunk, 0, size);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
          break;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  t.throws(() => writeFileSync(join(mnt, 'probe'), 'x'), { code: 'ENOSPC' }, 'the disk is full');
  await store.save(state(2));
  await store.save(state(3));
  t.deepEqual(store.load('db', 'db'), state(3));
});

test('the JSON file of earlier versions is read, and the first save replaces it', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'logs'));
  const file = join(dir, 'logs', 'db.json');
  // Bytes as the previous version wrote them (JSON, indented, a trailing newline).
  const old = `{\n  "log": "db",\n  "database": "db",\n  "tx_id": 7,\n  "alh": "${alh(7).toString('hex')}",\n  "server_uuid": "srv-1",\n  "durable_tx_id": 5,\n  "durable_alh": "${alh(5).toString('hex')}",\n  "updated_at": "2026-12-01T10:00:00.000Z"\n}\n`;
  writeFileSync(file, old);
  const store = new TrustedStateStore(dir);
  t.deepEqual(store.load('db', 'db'), { ...state(7), durable: { txId: 5, alh: alh(5) } });
  await store.save(state(8));
  t.deepEqual(new TrustedStateStore(dir).load('db', 'db'), state(8));
  t.not(readFileSync(file, 'utf8'), old);
  t.deepEqual(readdirSync(join(dir, 'logs')), ['db.json'], 'no temp file left');
  // The state is still readable text inside the file.
  t.regex(readFileSync(file, 'latin1'), /"tx_id": 8,/);
});

test('a save torn by a crash falls back to the state before it; both copies damaged is unusable', async (t) => {
  const dir = tempDir(t);
  const store = new TrustedStateStore(dir);
  for (let tx = 1; tx <= 4; tx++) await store.save(state(tx));
  const file = join(dir, 'logs', 'db.json');
  const bytes = readFileSync(file);
  // Tear the copy of the newest save (tx 4): some of its bytes never reached the disk.
  const torn = (at: number) => {
    const b = Buffer.from(bytes);
    b.fill(0, at + 40, at + 120);
    return b;
  };
  const newest = [0, bytes.length / 2].find((at) => bytes.subarray(at, at + 4096).includes('"tx_id": 4'))!;
  writeFileSync(file, torn(newest));
  // As after a crash: a new process, which knows the file only from what it reads.
  TrustedStateStore.closeFiles();
  // Not silently: whoever loads it is told one copy is not valid (a crash, or damage).
  const told: string[] = [];
  t.deepEqual(new TrustedStateStore(dir).load('db', 'db', (f) => told.push(f)), state(3));
  t.deepEqual(told, [file]);
  // A later save goes into the torn copy, never over tx 3's.
  await new TrustedStateStore(dir).save(state(5));
  t.deepEqual(new TrustedStateStore(dir).load('db', 'db', (f) => told.push(f)), state(5));
  t.is(told.length, 1, 'two valid copies: nothing to tell');
  t.regex(readFileSync(file, 'latin1'), /"tx_id": 3,/, 'the copy of tx 3 is still there');
  const both = readFileSync(file);
  both.fill(7, 30, 60);
  both.fill(7, both.length / 2 + 30, both.length / 2 + 60);
  writeFileSync(file, both);
  t.throws(() => new TrustedStateStore(dir).load('db', 'db'), { name: 'UnusableTrustFile', message: /db\.json is not valid JSON/ });
});

test('a state file moved aside (trust reset) is not written any more: the next save creates the file anew', async (t) => {
  const dir = tempDir(t);
  const store = new TrustedStateStore(dir);
  await store.save(state(1));
  await store.save(state(2));
  const file = join(dir, 'logs', 'db.json');
  renameSync(file, `${file}.reset-x`);
  await store.save(state(3));
  t.deepEqual(store.load('db', 'db'), state(3));
  const other = tempDir(t);
  mkdirSync(join(other, 'logs'));
  renameSync(`${file}.reset-x`, join(other, 'logs', 'db.json'));
  t.deepEqual(new TrustedStateStore(other).load('db', 'db'), state(2), 'the file moved aside keeps the state it had');
});
