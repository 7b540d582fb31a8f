// A proposal: the verified writer (gRPC calls, protobuf, proof checks, trusted-state fsyncs) in
// a worker thread, so it no longer competes with HandleEvent on the plugin server's event loop.
// Same interface as plugin/store/audit-writer.ts's AuditWriter (write, lastTxId, halted, close);
// the real AuditWriter runs inside the thread (bench/experiments/audit-writer-thread.ts). A
// batch crosses the thread boundary as one packed buffer (transferred, not copied); errors come
// back as the same classes (VerificationError, TamperError), so the pipeline's fatal/retry
// decisions are unchanged.
import { Worker } from 'node:worker_threads';
import { TamperError, type AuditWriterOptions, type KeyValue, type WriteResult } from '../../plugin/store/audit-writer.js';
import { VerificationError } from '../../plugin/store/proofs/index.js';
import { ImmudbError } from '../../plugin/store/immudb-client.js';

export { TamperError };
export type { AuditWriterOptions, KeyValue, WriteResult };

export interface ThreadError {
  name: string;
  message: string;
  code?: number;
  details?: string;
}

export function reviveError(e: ThreadError): Error {
  switch (e.name) {
    case 'VerificationError':
      return new VerificationError(e.message);
    case 'TamperError':
      return new TamperError(e.message);
    case 'ImmudbError':
      return new ImmudbError(e.message, e.code, e.details);
    default: {
      const err = new Error(e.message);
      err.name = e.name;
      return err;
    }
  }
}

/** Keys and values of a batch in one buffer: [kLen u32][vLen u32][key][value]... */
export function packBatch(records: readonly KeyValue[]): ArrayBuffer {
  let size = 0;
  for (const r of records) size += 8 + r.key.length + r.value.length;
  const buf = Buffer.allocUnsafeSlow(size);
  let o = 0;
  for (const r of records) {
    o = buf.writeUInt32LE(r.key.length, o);
    o = buf.writeUInt32LE(r.value.length, o);
    o += r.key.copy(buf, o);
    o += r.value.copy(buf, o);
  }
  return buf.buffer as ArrayBuffer;
}

export function unpackBatch(ab: ArrayBuffer): KeyValue[] {
  const buf = Buffer.from(ab);
  const out: KeyValue[] = [];
  for (let o = 0; o < buf.length; ) {
    const k = buf.readUInt32LE(o);
    const v = buf.readUInt32LE(o + 4);
    o += 8;
    out.push({ key: buf.subarray(o, o + k), value: buf.subarray(o + k, o + k + v) });
    o += k + v;
  }
  return out;
}

type Reply = { id: number; result?: WriteResult; error?: ThreadError; lastTxId: number; halted?: string };

export class AuditWriter {
  halted: Error | undefined;
  lastTxId = 0;
  private readonly worker: Worker;
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (r: WriteResult) => void; reject: (e: unknown) => void }>();

  constructor(opts: AuditWriterOptions) {
    const { logger: _logger, ...rest } = opts; // a logger is not cloneable; the thread makes its own
    this.worker = new Worker(new URL('./audit-writer-thread.js', import.meta.url), { workerData: rest });
    this.worker.unref();
    this.worker.on('message', (m: Reply) => {
      this.lastTxId = m.lastTxId;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error) {
        const err = reviveError(m.error);
        if (m.halted && !this.halted) this.halted = err;
        p.reject(err);
      } else p.resolve(m.result!);
    });
    this.worker.on('error', (e) => {
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    });
  }

  write(records: readonly KeyValue[]): Promise<WriteResult> {
    const id = ++this.seq;
    const batch = packBatch(records);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ op: 'write', id, batch }, [batch]);
    });
  }

  async close(): Promise<void> {
    const id = ++this.seq;
    await new Promise<void>((resolve) => {
      this.pending.set(id, { resolve: () => resolve(), reject: () => resolve() });
      this.worker.postMessage({ op: 'close', id });
    });
    await this.worker.terminate();
  }
}
