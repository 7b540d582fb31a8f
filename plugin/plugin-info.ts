// What kong-js-pluginserver reads from the plugin module besides the Plugin class. Kept apart
// from the handler so the thread that answers Kong can load it without the pipeline.
import { configFields } from './config/schema.js';

export const Name = 'immudb-audit';
export { Version } from './version.js';
/** Runs after Kong's bundled loggers (http-log is 12): auditing sees the final outcome. */
export const Priority = 10;
export const Schema = configFields;
