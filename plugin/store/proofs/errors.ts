// The one error type every proof check throws. A proof that does not hold, a message with a
// missing or malformed part, and numbers we cannot represent exactly are all reported this way,
// so callers can treat "not verified" uniformly and never mistake it for a transport error.

export class VerificationError extends Error {
  override readonly name = 'VerificationError';
  constructor(message: string) {
    super(message);
  }
}

