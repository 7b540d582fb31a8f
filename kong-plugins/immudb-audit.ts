// The module kong-js-pluginserver loads (dist/kong-plugins/immudb-audit.js): only the plugin's
// public face. Keep this directory free of other files: the server loads every file in it.
export { Plugin, Name, Version, Priority, Schema } from '../plugin/handler.js';
