// The worker thread of bench/experiments/audit-writer-worker.ts: the plugin's own AuditWriter,
// fed batches from the main thread.
import { parentPort, workerData } from 'node:worker_threads';
import { AuditWriter, type AuditWriterOptions } from '../../plugin/store/audit-writer.js';
import { createLogger } from '../../plugin/log.js';
import { unpackBatch } from './audit-writer-worker.js';

const opts = workerData as Omit<AuditWriterOptions, 'logger'>;
const writer = new AuditWriter({ ...opts, logger: createLogger(`writer ${opts.connection.host}:${opts.connection.port}/${opts.connection.database} (thread)`) });

parentPort!.on('message', (m: { op: 'write' | 'close'; id: number; batch?: ArrayBuffer }) => {
  if (m.op === 'close') {
    writer.close().finally(() => parentPort!.postMessage({ id: m.id, result: { txId: 0, written: 0, duplicates: 0 }, lastTxId: writer.lastTxId }));
    return;
  }
  writer.write(unpackBatch(m.batch!)).then(
    (result) => parentPort!.postMessage({ id: m.id, result, lastTxId: writer.lastTxId }),
    (e: Error & { code?: number; details?: string }) => parentPort!.postMessage({
      id: m.id,
      error: { name: e.name, message: e.message, ...(typeof e.code === 'number' ? { code: e.code } : {}), ...(e.details ? { details: e.details } : {}) },
      lastTxId: writer.lastTxId,
      ...(writer.halted ? { halted: writer.halted.message } : {}),
    }),
  );
});
