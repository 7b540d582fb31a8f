// The parts of kong-pdk 0.6.0 (CommonJS, untyped) the plugin server reuses unchanged: its CLI
// parser (so Kong's start/query commands keep their flags), its Server (plugin loading, instances,
// events) and the node-color-log logger and @msgpack/msgpack copy it depends on (resolved from
// kong-pdk itself, so answers are encoded exactly as upstream encodes them).
import { createRequire } from 'node:module';

export interface KongPdkLogger {
  setLevel(level: string): void;
  debug(...a: unknown[]): void;
  info(...a: unknown[]): void;
  warn(...a: unknown[]): void;
  error(...a: unknown[]): void;
}

export interface KongPdkServer {
  getLogger(): KongPdkLogger;
  getPlugins(): Map<string, unknown>;
  GetPluginInfo(name: string): Promise<unknown>;
  close(): void;
}

export interface CliOptions {
  pluginsDirectory: string;
  kongPrefix: string;
  sockName: string;
  logLevel: 'info' | 'debug';
  /** commander names these after their last flag (`-dump-plugin-info`): capitalised. */
  DumpPluginInfo?: string;
  DumpAllPlugins?: boolean;
}

export interface Msgpack {
  Encoder: new () => { encode(v: unknown): Uint8Array };
  Decoder: new () => { decode(b: Uint8Array): unknown };
  encode(v: unknown): Uint8Array;
}

const pdkRequire = createRequire(createRequire(import.meta.url).resolve('kong-pdk/package.json'));

export const kongPdk = {
  cli: pdkRequire('./cli.js') as { parse(dedicated?: boolean): CliOptions },
  Server: pdkRequire('./server.js') as new (pluginsDir: string, logger: KongPdkLogger) => KongPdkServer,
  logger: pdkRequire('node-color-log') as KongPdkLogger,
  msgpack: pdkRequire('@msgpack/msgpack') as Msgpack,
};
