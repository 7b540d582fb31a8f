// TLS (and mutual TLS) to immudb, with the server's CA pinned.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { KongFieldList } from '../kong-schema.js';
import { pemOrReference, REFERENCE_SHAPE } from './references.js';

export interface TlsConfig {
  tls: {
    enabled: boolean;
    ca_cert: string | null;
    client_cert: string | null;
    client_key: string | null;
    server_name: string | null;
  };
}

export const tlsFields: KongFieldList = [
  {
    tls: {
      type: 'record',
      entity_checks: [{ mutually_required: ['client_cert', 'client_key'] }],
      description: 'TLS to immudb (immudb started with --certificate/--pkey; mutual TLS with --mtls --clientcas).',
      fields: [
        { enabled: { type: 'boolean', required: true, default: false, description: 'Connect to immudb over TLS.' } },
        { ca_cert: { type: 'string', referenceable: true, len_min: 1, match_none: REFERENCE_SHAPE, match_any: pemOrReference('BEGIN CERTIFICATE', 'certificates'), description: "PEM of the CA that signed immudb's certificate (only this CA is trusted: the server is pinned), or env:<VARIABLE> / file:<absolute path> / a vault reference. Unset: the system's trust store (not pinned)." } },
        { client_cert: { type: 'string', referenceable: true, len_min: 1, match_none: REFERENCE_SHAPE, match_any: pemOrReference('BEGIN CERTIFICATE', 'a certificate chain'), description: 'PEM client certificate (chain) for mutual TLS, or a reference as for ca_cert.' } },
        { client_key: { type: 'string', referenceable: true, encrypted: true, len_min: 1, match_none: REFERENCE_SHAPE, match_any: pemOrReference('PRIVATE KEY', 'a private key'), description: 'PEM private key of client_cert, or a reference (vault, env:<VARIABLE>, file:<absolute path>).' } },
        { server_name: { type: 'string', match: '^[A-Za-z0-9.:-]+$', len_min: 1, len_max: 253, description: "Name to check in immudb's certificate when it differs from immudb_host." } },
      ],
    },
  },
];

/**
 * What is wrong with resolved TLS settings (checked at instance start so that a bad certificate
 * fails StartInstance with a reason instead of every write). Never quotes the material.
 */
export function tlsProblems(config: TlsConfig): string[] {
  const t = config.tls;
  if (!t?.enabled) return [];
  const problems: string[] = [];
  const certs = (field: string, pem: string | null) => {
    if (!pem) return;
    const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
    if (!blocks) return void problems.push(`tls.${field}: not a PEM certificate`);
    for (const b of blocks) {
      try {
        new X509Certificate(b);
      } catch {
        return void problems.push(`tls.${field}: a certificate in it cannot be parsed`);
      }
    }
  };
  certs('ca_cert', t.ca_cert);
  certs('client_cert', t.client_cert);
  if (t.client_key) {
    try {
      createPrivateKey(t.client_key);
    } catch {
      problems.push('tls.client_key: not a PEM private key (or an encrypted one, which is not supported)');
    }
  }
  return problems;
}
