// undici's Pool, its request API and its error classes without undici's index, which also loads fetch,
// WebSocket, EventSource, the cache and mock agents (~110 modules, ~5 MB of resident memory measured in
// `serve`; issue 3 RSS target). These are the same module instances index.js re-exports, so `instanceof`
// still holds. undici has no "exports" map, so the paths are importable; the unit tests of
// imds/upstream.ts and the kube client's integration tests exercise them.
import { createRequire } from 'node:module';
import type { Dispatcher, Pool as PoolType, errors as ErrorsType } from 'undici';

const load = createRequire(import.meta.url);

export const Pool = load('undici/lib/dispatcher/pool.js') as typeof PoolType;
export const undiciErrors = load('undici/lib/core/errors.js') as typeof ErrorsType;

const api = load('undici/lib/api/index.js') as { request: Dispatcher['request'] };

/** `dispatcher.request(opts)`: index.js adds the API to Dispatcher.prototype; this module does not. */
export function request(
  dispatcher: Dispatcher,
  opts: Dispatcher.RequestOptions,
): Promise<Dispatcher.ResponseData> {
  return api.request.call(dispatcher, opts) as Promise<Dispatcher.ResponseData>;
}
