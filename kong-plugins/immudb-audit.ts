// The module kong-js-pluginserver loads (dist/kong-plugins/immudb-audit.js): only the plugin's
// public face. Keep this directory free of other files: the server loads every file in it.
// Side effect at load, before kong-pdk creates its socket: a umask without group/other bits.
import '../plugin/capture/hardening.js';

export { Name, Version, Priority, Schema } from '../plugin/plugin-info.js';
export { Plugin } from '../plugin/thread/plugin-front.js';
