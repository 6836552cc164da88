// A list+watch loop that does not give up (client-node 1.4's ListWatch stopped on the first non-410
// error and had no backoff):
//   list (full view, resourceVersion) → watch from that version → on a clean end, watch again from the
//   last version seen → on 410 Gone, relist → on any error (API server restart, network drop, a dead
//   stream, a malformed line), back off exponentially and relist. Bookmarks keep the version fresh so
//   re-watches rarely hit 410.
import type { Logger } from '../logger.js';
import { KubeApiError, type KubeClient } from './rest.js';

export interface ListWatchOptions<T> {
  readonly client: KubeClient;
  /** Collection path, e.g. /api/v1/pods. */
  readonly path: string;
  readonly fieldSelector?: string;
  /** A full list replaced the view. */
  readonly onList: (items: readonly T[]) => void;
  readonly onEvent: (type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: T) => void;
  /** Anything was heard from the API server (list, event, bookmark). */
  readonly onSync?: () => void;
  readonly onRestart?: (cause: 'gone' | 'error' | 'closed') => void;
  readonly logger: Logger;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** The API server ends each watch after this long. */
  readonly watchTimeoutSeconds?: number;
  /** Silence after which a stream counts as dead (bookmarks arrive about once a minute). */
  readonly idleTimeoutMs?: number;
  readonly listTimeoutMs?: number;
}

export interface ListWatchHandle {
  /** Resolves after the first full list has been applied. */
  readonly synced: Promise<void>;
  stop(): void;
}

type WatchEnd = { kind: 'gone' } | { kind: 'closed'; rv: string } | { kind: 'error'; err: unknown };
type Meta = { metadata?: { resourceVersion?: string } };
type Status = { code?: number; reason?: string; message?: string };

const isGone = (s: Status) => s.code === 410 || s.reason === 'Expired' || s.reason === 'Gone';

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export function startListWatch<T extends Meta>(o: ListWatchOptions<T>): ListWatchHandle {
  const stopper = new AbortController();
  const timeoutSeconds = o.watchTimeoutSeconds ?? 300;
  const idleTimeoutMs = o.idleTimeoutMs ?? (timeoutSeconds + 30) * 1000;
  let current: AbortController | undefined;
  let markSynced: () => void = () => undefined;
  const synced = new Promise<void>((r) => (markSynced = r));
  const initial = o.backoffInitialMs ?? 250;
  const max = o.backoffMaxMs ?? 10_000;

  async function watchOnce(rv: string): Promise<WatchEnd> {
    const ctl = new AbortController();
    current = ctl;
    if (stopper.signal.aborted) ctl.abort();
    let last = rv;
    let end: WatchEnd | undefined;
    const query = {
      resourceVersion: rv,
      allowWatchBookmarks: true,
      timeoutSeconds,
      ...(o.fieldSelector !== undefined ? { fieldSelector: o.fieldSelector } : {}),
    };
    const onEvent = ({ type, object }: { type: string; object: T }) => {
      if (type === 'ERROR') {
        const st = object as Status;
        end = isGone(st)
          ? { kind: 'gone' }
          : { kind: 'error', err: new Error(`watch ERROR event: ${st.code ?? '?'} ${st.message ?? ''}`) };
        ctl.abort();
        return;
      }
      last = object.metadata?.resourceVersion ?? last;
      o.onSync?.();
      if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') o.onEvent(type, object);
    };
    try {
      await o.client.watch<T>(o.path, query, onEvent, { signal: ctl.signal, idleTimeoutMs });
    } catch (err) {
      return err instanceof KubeApiError && err.code === 410 ? { kind: 'gone' } : { kind: 'error', err };
    }
    return end ?? { kind: 'closed', rv: last };
  }

  async function relist(): Promise<string> {
    const { items, resourceVersion } = await withTimeout(
      o.client.list<T>(o.path, o.fieldSelector !== undefined ? { fieldSelector: o.fieldSelector } : {}),
      o.listTimeoutMs ?? 10_000,
      `list ${o.path}`,
    );
    o.onList(items);
    o.onSync?.();
    markSynced();
    return resourceVersion;
  }

  async function loop(): Promise<void> {
    let failures = 0;
    while (!stopper.signal.aborted) {
      try {
        let rv = await relist();
        for (;;) {
          const started = Date.now();
          const end = await watchOnce(rv);
          if (stopper.signal.aborted) return;
          if (end.kind === 'error') throw end.err;
          // Reset only after a watch worked: a server that lists but cannot watch still backs off.
          failures = 0;
          o.onRestart?.(end.kind);
          if (end.kind === 'gone') break;
          rv = end.rv;
          // A watch the server ends at once, again and again, must not become a hot loop.
          if (Date.now() - started < 1000) await sleep(initial, stopper.signal);
        }
      } catch (err) {
        if (stopper.signal.aborted) return;
        failures += 1;
        o.onRestart?.('error');
        const delay = Math.min(max, initial * 2 ** (failures - 1));
        o.logger.warn(
          { path: o.path, failures, retryInMs: delay, err: (err as Error).message },
          'list/watch failed',
        );
        await sleep(delay, stopper.signal);
      }
    }
  }

  void loop();
  return {
    synced,
    stop() {
      stopper.abort();
      current?.abort();
    },
  };
}
