// The one error family of trust failures. Every proof check throws it: a proof that does not
// hold, a message with a missing or malformed part, numbers we cannot represent exactly. The
// trusted session (store/trusted-session.ts) throws it too: another server behind a known
// address, a rolled-back history, a trusted state or binding that cannot be read or written.
// Callers treat it uniformly: the writer halts its destination, the CLI exits 3; it is never
// mistaken for a transport error (which is retried).

export class VerificationError extends Error {
  override readonly name: string = 'VerificationError';
  constructor(message: string) {
    super(message);
  }
}

