#!/usr/bin/env node
// immudb-audit-pluginserver: a drop-in for kong-pdk 0.6.0's kong-js-pluginserver (same flags,
// same answers) with its listener's framing and debug-line costs fixed (./listener.ts), and no event
// kept after kong.response.exit (./exit-events.ts). Kong runs
// it through pluginserver_<name>_start_cmd and _query_cmd.
// It first execs itself with the heap and malloc settings of ./memory-flags.ts (before loading
// anything else: hence the dynamic imports).
import * as path from 'node:path';
import { execWithMemoryFlags } from './memory-flags.js';

execWithMemoryFlags();
const { kongPdk } = await import('./kong-pdk.js');
const { Listener } = await import('./listener.js');
const { forgetEventsEndedByExit } = await import('./exit-events.js');

const opts = kongPdk.cli.parse();
const logger = kongPdk.logger;
logger.setLevel(opts.logLevel);

const ps = new kongPdk.Server(opts.pluginsDirectory, logger);
forgetEventsEndedByExit(ps);
if (opts.DumpPluginInfo) {
  void ps.GetPluginInfo(opts.DumpPluginInfo).then((v) => process.stdout.write(kongPdk.msgpack.encode(v)));
} else if (opts.DumpAllPlugins) {
  void Promise.all([...ps.getPlugins().keys()].map((name) => ps.GetPluginInfo(name))).then((values) => {
    console.log(JSON.stringify(values));
  });
} else {
  new Listener(ps, path.join(opts.kongPrefix, opts.sockName), kongPdk.msgpack, { debug: opts.logLevel === 'debug' }).serve();
}
// As upstream: stops the expired-instance sweep (Kong closes instances itself).
ps.close();
