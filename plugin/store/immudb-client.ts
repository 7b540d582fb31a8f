// A small immudb gRPC client: session handling (open, keep alive, reopen after a server
// restart or session expiry), database selection/creation and the calls the audit store uses.
// Proof checking lives elsewhere (store/proofs); this module only moves messages.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type {
  Entry, ImmutableState, KeyValueInput, PreconditionInput, Tx, TxHeader, VerifiableEntry, VerifiableTx,
} from './immudb-types.js';
import { EntryTypeAction } from './immudb-types.js';

export interface ImmudbTlsOptions {
  /** PEM of the CA that signed immudb's certificate (pins the server). */
  ca?: Buffer;
  /** Client certificate and key for mutual TLS. */
  cert?: Buffer;
  key?: Buffer;
  /** Name to check in the server certificate, when it differs from host. */
  serverName?: string;
}

export interface ImmudbConnectionOptions {
  host: string;
  port: number;
  username: string;
  password: string;
  database: string;
  /** Create the database if it does not exist (needs a user allowed to). */
  createDatabase?: boolean;
  /** Header version for a database we create (1 is immudb's default; 0 = immudb 1.1 format). */
  writeTxHeaderVersion?: 0 | 1;
  tls?: ImmudbTlsOptions;
  /** Deadline of one call, ms. */
  callTimeoutMs?: number;
  /** Interval of session keep-alives, ms (immudb ends sessions idle for 3 min by default). */
  keepAliveMs?: number;
  /**
   * Called with the server's identity each time a session opens, before any call uses it; may
   * throw to refuse the server (e.g. another server behind a known address).
   */
  checkIdentity?: (serverUuid: string) => void;
}

/** An error from immudb or the connection, with the gRPC code when there is one. */
export class ImmudbError extends Error {
  override readonly name = 'ImmudbError';
  constructor(message: string, readonly code?: grpc.status, readonly details?: string) {
    super(message);
  }
}

const here = dirname(fileURLToPath(import.meta.url));
/** proto/ sits at the package root; this file is at dist/plugin/store/. */
const PROTO_PATH = [join(here, '../../../proto/immudb.proto'), join(here, '../../proto/immudb.proto')].find((p) => {
  try {
    readFileSync(p);
    return true;
  } catch {
    return false;
  }
});

type UnaryFn = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => grpc.ClientUnaryCall;
type ServiceClient = grpc.Client & Record<string, UnaryFn>;

let serviceCtor: (new (address: string, creds: grpc.ChannelCredentials, opts?: grpc.ChannelOptions) => ServiceClient) | undefined;

function loadService() {
  if (serviceCtor) return serviceCtor;
  if (!PROTO_PATH) throw new Error('immudb.proto not found next to the package (proto/immudb.proto)');
  const def = protoLoader.loadSync(PROTO_PATH, {
    keepCase: true,
    longs: String,
    enums: Number,
    bytes: Buffer,
    defaults: true,
    arrays: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    immudb: { schema: { ImmuService: typeof serviceCtor } };
  };
  serviceCtor = pkg.immudb.schema.ImmuService;
  return serviceCtor!;
}

/** gRPC codes on which a fresh session may help: the server forgot ours (restart, expiry). */
function isSessionLost(err: grpc.ServiceError): boolean {
  if (err.code === grpc.status.UNAUTHENTICATED) return true;
  return /session not found|no sessions|invalid token|not logged in|session.*(expired|closed)/i.test(err.details ?? err.message);
}

function isMissingDatabase(err: grpc.ServiceError): boolean {
  return /database .*does not exist|database not found/i.test(err.details ?? err.message);
}

export class ImmudbClient {
  private client: ServiceClient;
  private sessionId = '';
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private opening: Promise<void> | undefined;
  private closed = false;
  /** A session was opened once (the database is never created on a reconnection). */
  private opened = false;
  /** The server's identity (immudb's UUID); trusted state is kept per identity. */
  serverUuid = '';

  private constructor(readonly options: ImmudbConnectionOptions) {
    const Service = loadService();
    const creds = options.tls
      ? grpc.credentials.createSsl(options.tls.ca ?? null, options.tls.key ?? null, options.tls.cert ?? null)
      : grpc.credentials.createInsecure();
    const channelOptions: grpc.ChannelOptions = {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.max_send_message_length': 32 * 1024 * 1024,
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 5_000,
    };
    if (options.tls?.serverName) channelOptions['grpc.ssl_target_name_override'] = options.tls.serverName;
    this.client = new Service(`${options.host}:${options.port}`, creds, channelOptions);
  }

  get database(): string {
    return this.options.database;
  }

  /** Connects and opens a session on the configured database (creating it if asked to). */
  static async connect(options: ImmudbConnectionOptions): Promise<ImmudbClient> {
    const c = new ImmudbClient(options);
    try {
      await c.ensureSession();
    } catch (err) {
      c.client.close();
      throw err;
    }
    return c;
  }

  private raw<T>(method: string, req: unknown, withSession = true): Promise<T> {
    const md = new grpc.Metadata();
    if (withSession && this.sessionId) md.set('sessionid', this.sessionId);
    const deadline = Date.now() + (this.options.callTimeoutMs ?? 30_000);
    return new Promise<T>((resolve, reject) => {
      const fn = this.client[method];
      if (typeof fn !== 'function') return reject(new ImmudbError(`unknown immudb method ${method}`));
      const call = fn.call(this.client, req, md, { deadline }, (err, res) => {
        if (err) return reject(err);
        resolve(res as T);
      });
      call.on('metadata', (m: grpc.Metadata) => {
        const uuid = m.get('immudb-uuid')[0];
        if (typeof uuid === 'string' && uuid) this.noteServerUuid(uuid);
      });
    });
  }

  private noteServerUuid(uuid: string) {
    this.serverUuid = uuid;
  }

  private async openSession(database: string): Promise<void> {
    const res = await this.raw<{ sessionID: string; serverUUID: string }>(
      'OpenSession',
      { username: Buffer.from(this.options.username), password: Buffer.from(this.options.password), databaseName: database },
      false,
    );
    if (res.serverUUID) this.noteServerUuid(res.serverUUID);
    if (this.options.checkIdentity) {
      try {
        this.options.checkIdentity(this.serverUuid);
      } catch (e) {
        // Refused: leave the session unused and closed.
        this.sessionId = res.sessionID;
        await this.closeSessionQuietly();
        throw e;
      }
    }
    this.sessionId = res.sessionID;
  }

  private async closeSessionQuietly(): Promise<void> {
    if (!this.sessionId) return;
    try {
      await this.raw('CloseSession', {});
    } catch {
      // The server may already have dropped it; nothing to clean up then.
    }
    this.sessionId = '';
  }

  private ensureSession(): Promise<void> {
    if (this.sessionId) return Promise.resolve();
    if (!this.opening) {
      this.opening = this.doOpen().finally(() => {
        this.opening = undefined;
      });
    }
    return this.opening;
  }

  private async doOpen(): Promise<void> {
    if (this.closed) throw new ImmudbError('immudb client is closed');
    try {
      await this.openSession(this.options.database);
    } catch (e) {
      const err = e as grpc.ServiceError;
      // Created on the first connection only: a database missing after a reconnection means
      // another server (or a removed database) behind the address, which must not be papered over.
      if (!this.options.createDatabase || this.opened || !isMissingDatabase(err)) throw toImmudbError(err, 'open session');
      await this.openSession('defaultdb').catch((e2) => {
        throw toImmudbError(e2 as grpc.ServiceError, 'open session to create the database');
      });
      try {
        const settings = this.options.writeTxHeaderVersion === undefined
          ? {}
          : { writeTxHeaderVersion: { value: this.options.writeTxHeaderVersion } };
        await this.raw('CreateDatabaseV2', { name: this.options.database, settings, ifNotExists: true });
      } catch (e3) {
        throw toImmudbError(e3 as grpc.ServiceError, `create database ${this.options.database}`);
      } finally {
        await this.closeSessionQuietly();
      }
      await this.openSession(this.options.database).catch((e4) => {
        throw toImmudbError(e4 as grpc.ServiceError, 'open session');
      });
    }
    this.opened = true;
    this.startKeepAlive();
  }

  private startKeepAlive() {
    if (this.keepAliveTimer) return;
    this.keepAliveTimer = setInterval(() => {
      if (!this.sessionId) return;
      this.raw('KeepAlive', {}).catch(() => {
        // A lost session is reopened by the next call.
        this.sessionId = '';
      });
    }, this.options.keepAliveMs ?? 60_000);
    this.keepAliveTimer.unref();
  }

  /** One call with a session; reopens the session once if the server forgot it. */
  async call<T>(method: string, req: unknown): Promise<T> {
    await this.ensureSession();
    try {
      return await this.raw<T>(method, req);
    } catch (e) {
      const err = e as grpc.ServiceError;
      if (!isSessionLost(err) || this.closed) throw toImmudbError(err, method);
      this.sessionId = '';
      await this.ensureSession();
      try {
        return await this.raw<T>(method, req);
      } catch (e2) {
        throw toImmudbError(e2 as grpc.ServiceError, method);
      }
    }
  }

  set(kvs: KeyValueInput[], preconditions: PreconditionInput[] = []): Promise<TxHeader> {
    return this.call('Set', { KVs: kvs, noWait: false, preconditions });
  }

  verifiableSet(kvs: KeyValueInput[], proveSinceTx: number, preconditions: PreconditionInput[] = []): Promise<VerifiableTx> {
    return this.call('VerifiableSet', {
      setRequest: { KVs: kvs, noWait: false, preconditions },
      proveSinceTx: String(proveSinceTx),
    });
  }

  get(key: Buffer, atTx = 0): Promise<Entry> {
    return this.call('Get', { key, atTx: String(atTx) });
  }

  verifiableGet(key: Buffer, proveSinceTx: number, atTx = 0): Promise<VerifiableEntry> {
    return this.call('VerifiableGet', { keyRequest: { key, atTx: String(atTx) }, proveSinceTx: String(proveSinceTx) });
  }

  txById(tx: number, action: EntryTypeAction = EntryTypeAction.RAW_VALUE): Promise<Tx> {
    return this.call('TxById', { tx: String(tx), entriesSpec: { kvEntriesSpec: { action } } });
  }

  verifiableTxById(tx: number, proveSinceTx: number, action: EntryTypeAction = EntryTypeAction.RAW_VALUE): Promise<VerifiableTx> {
    return this.call('VerifiableTxById', {
      tx: String(tx),
      proveSinceTx: String(proveSinceTx),
      entriesSpec: { kvEntriesSpec: { action } },
    });
  }

  async txScan(initialTx: number, limit: number, action: EntryTypeAction = EntryTypeAction.RAW_VALUE): Promise<Tx[]> {
    const res = await this.call<{ txs: Tx[] }>('TxScan', {
      initialTx: String(initialTx), limit, entriesSpec: { kvEntriesSpec: { action } },
    });
    return res.txs;
  }

  async scan(prefix: Buffer, opts: { seekKey?: Buffer; limit?: number; desc?: boolean } = {}): Promise<Entry[]> {
    const res = await this.call<{ entries: Entry[] }>('Scan', {
      prefix,
      seekKey: opts.seekKey ?? Buffer.alloc(0),
      limit: String(opts.limit ?? 1000),
      desc: opts.desc ?? false,
    });
    return res.entries;
  }

  /** Every entry under a prefix, read in pages of `pageSize`. */
  async scanPrefix(prefix: Buffer, pageSize = 500): Promise<Entry[]> {
    const out: Entry[] = [];
    let seek: Buffer | undefined;
    for (;;) {
      const page = await this.scan(prefix, { limit: pageSize, ...(seek ? { seekKey: seek } : {}) });
      out.push(...page);
      if (page.length < pageSize) return out;
      seek = page[page.length - 1]!.key;
    }
  }

  currentState(): Promise<ImmutableState> {
    return this.call('CurrentState', {});
  }

  /**
   * Whether this server holds the database as a read-only replica (immudb's replication
   * settings, from DatabaseListV2); undefined when the server does not tell this user.
   */
  async isReplica(): Promise<boolean | undefined> {
    let res: { databases: Array<{ name: string; settings?: { replicationSettings?: { replica?: { value: boolean } | null } | null } | null }> };
    try {
      res = await this.call('DatabaseListV2', {});
    } catch {
      return undefined;
    }
    const db = res.databases.find((d) => d.name === this.options.database);
    const replica = db?.settings?.replicationSettings?.replica;
    return replica ? replica.value : db ? false : undefined;
  }

  /** Creates a database with immudb's nullable settings (tests and tools: replicas, sync replication). */
  createDatabase(name: string, settings: Record<string, unknown>): Promise<unknown> {
    return this.call('CreateDatabaseV2', { name, settings, ifNotExists: false });
  }

  /** Changes a database's settings, e.g. promotes a replica (`replicationSettings.replica` false). */
  updateDatabase(name: string, settings: Record<string, unknown>): Promise<unknown> {
    return this.call('UpdateDatabaseV2', { database: name, settings });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = undefined;
    await this.closeSessionQuietly();
    this.client.close();
  }
}

/** What failed in a TLS handshake, from grpc-js / OpenSSL text (no material, no paths). */
const TLS_FAILURE = /certificate|self[- ]signed|SSL routines|tlsv1 alert|sslv3 alert|handshake|wrong version number|unknown ca|ERR_TLS|ERR_SSL/i;

export function tlsFailureReason(details: string): string | null {
  if (!TLS_FAILURE.test(details)) return null;
  const openssl = /SSL routines:[^:]*:([^:]+)/.exec(details);
  const reason = openssl ? openssl[1]! : details.replace(/^No connection established\. Last error: (Error: )?/, '');
  // Node's hint about --use-system-ca is beside the point: the plugin trusts tls.ca_cert only.
  return reason.replace(/;\s*if the root CA is installed locally.*$/s, '').replace(/\s*\(\d{4}-\d\d-\d\dT[^)]*\)\.?\s*Resolution note:.*$/s, '').trim();
}

function toImmudbError(err: grpc.ServiceError | Error, what: string): Error {
  if (err instanceof ImmudbError) return err;
  // Not from gRPC (e.g. an identity refused by checkIdentity): keep it as it is.
  if (typeof (err as grpc.ServiceError).code !== 'number') return err;
  const se = err as grpc.ServiceError;
  const details = se.details ?? err.message;
  const tls = tlsFailureReason(details);
  if (tls !== null) {
    return new ImmudbError(
      `immudb ${what} failed: TLS handshake failed: ${tls} (check tls.ca_cert, the CA that signed immudb's certificate; tls.server_name; and for mutual TLS tls.client_cert / tls.client_key)`,
      se.code,
      details,
    );
  }
  return new ImmudbError(`immudb ${what} failed: ${details}`, se.code, details);
}

/** Whether an error says the key does not exist. */
export function isKeyNotFoundError(err: unknown): boolean {
  return err instanceof ImmudbError && /key not found/i.test(err.details ?? err.message);
}

/** Whether immudb refused a write because the database is a read-only replica. */
export function isReplicaError(err: unknown): boolean {
  return err instanceof ImmudbError && /read-only because it's a replica|is a replica/i.test(err.details ?? err.message);
}

/** Whether an error means the server could not be reached or went away (another address may serve). */
export function isUnreachableError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === grpc.status.UNAVAILABLE || code === grpc.status.DEADLINE_EXCEEDED || code === grpc.status.CANCELLED;
}

/** Whether an error is a precondition failure (the key already exists). */
export function isKeyExistsError(err: unknown): boolean {
  return err instanceof ImmudbError && /precondition|key already exists/i.test(err.details ?? err.message);
}
