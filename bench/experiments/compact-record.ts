// The key and value of an audit record in ONE exact-size allocation (Buffer.allocUnsafeSlow,
// outside Node's 8 KB Buffer pool). Buffer.from(string) puts small buffers in shared 8 KB pool
// slabs; a queued record then keeps its whole slab alive, together with whatever short-lived
// buffers (spool frames, gRPC messages) were cut from the same slab. While immudb is down that
// multiplies the memory per queued entry (see benchmark 4).
import type { AuditRecord } from '../../plugin/capture/encode.js';

export function compactRecord(id: string, key: string, json: string): AuditRecord {
  const kLen = Buffer.byteLength(key);
  const buf = Buffer.allocUnsafeSlow(kLen + Buffer.byteLength(json));
  buf.write(key, 0, 'utf8');
  buf.write(json, kLen, 'utf8');
  return { id, key: buf.subarray(0, kLen), value: buf.subarray(kLen) };
}
