// An ECDSA P-256 key pair for immudb's --signingKey (private key, SEC1 PEM) and the plugin's or
// the CLI's server public key (SPKI PEM), written to files in `dir`.
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SigningKeyFiles {
  priv: string;
  pub: string;
  pubPem: string;
}

export function signingKeyPair(dir: string, name: string): SigningKeyFiles {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const priv = join(dir, `${name}.key`);
  const pub = join(dir, `${name}.pub`);
  const pubPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  writeFileSync(priv, privateKey.export({ type: 'sec1', format: 'pem' }));
  writeFileSync(pub, pubPem);
  return { priv, pub, pubPem };
}
