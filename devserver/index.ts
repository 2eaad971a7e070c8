/**
 * Local mytoken-compatible dev server backed by a real OpenID provider, for tests, demos and
 * benchmarks. It shares no code with the client library: it is an independent oracle built from
 * the API reference.
 *
 * @example
 *   import { mint, startDevServer } from '../devserver/index.ts';
 *
 *   const dev = await startDevServer({ port: 0 });
 *   const mytoken = await mint({ server: dev.urls.mytoken_server, rotation: ['on_AT'] });
 *   // … use dev.urls.mytoken_server / dev.urls.resource …
 *   await dev.close();
 */
export { startDevServer } from './server.ts';
export type { DevServer, DevServerOptions, DevServerUrls } from './server.ts';
export { mint, mintResponse } from './mint.ts';
export type { MintOptions } from './mint.ts';
export { FAULT_KINDS } from './faults.ts';
export { OP_SERVICE_CLIENT } from './op.ts';
export type { Fault, FaultKind, FaultSpec } from './faults.ts';
export type { StatsSnapshot } from './stats.ts';
export { DevServerError, ApiError } from './errors.ts';
export type { DevServerErrorCode } from './errors.ts';
export type { Logger } from './log.ts';
