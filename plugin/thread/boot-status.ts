// Whether the audit thread loaded, readable while the main thread is blocked in Atomics.wait
// (StartInstance): a thread that cannot load its modules (a broken install) must fail
// StartInstance with the reason at once, not after the start timeout. Its error events reach
// the main thread's event loop only, which a blocked StartInstance does not run.
const FAILED = 2;
const HEADER = 8;
const SIZE = 4096;

export function newBootStatus(): SharedArrayBuffer {
  return new SharedArrayBuffer(SIZE);
}

/** Called by the thread when its modules failed to load. */
export function markBootFailed(status: SharedArrayBuffer, error: unknown): void {
  const i32 = new Int32Array(status, 0, 2);
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  const { written } = new TextEncoder().encodeInto(text, new Uint8Array(status, HEADER, SIZE - HEADER));
  Atomics.store(i32, 1, written);
  Atomics.store(i32, 0, FAILED);
}

/** The reason the thread could not load, if it could not. */
export function bootFailure(status: SharedArrayBuffer): string | undefined {
  const i32 = new Int32Array(status, 0, 2);
  if (Atomics.load(i32, 0) !== FAILED) return undefined;
  // Copied out of shared memory: TextDecoder does not read SharedArrayBuffer views.
  return new TextDecoder().decode(new Uint8Array(status, HEADER, Atomics.load(i32, 1)).slice());
}
