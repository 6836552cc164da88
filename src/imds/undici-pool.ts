// undici's Pool and error classes without undici's index, which also loads fetch, WebSocket, EventSource,
// the cache and mock agents (~110 modules, ~5 MB of resident memory measured in `serve`; issue 3 RSS
// target). These are the same module instances index.js re-exports, so `instanceof` still holds.
// undici has no "exports" map, so the paths are importable; the unit tests of upstream.ts exercise both.
import { createRequire } from 'node:module';
import type { Pool as PoolType, errors as ErrorsType } from 'undici';

const load = createRequire(import.meta.url);

export const Pool = load('undici/lib/dispatcher/pool.js') as typeof PoolType;
export const undiciErrors = load('undici/lib/core/errors.js') as typeof ErrorsType;
