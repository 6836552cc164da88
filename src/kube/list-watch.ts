// A list+watch loop that does not give up. @kubernetes/client-node 1.4's ListWatch stops on the first
// non-410 error and has no backoff (shared/docs/style-anchors.md §4), so the loop is ours:
//   list (full view, resourceVersion) → watch from that version → on a clean end, watch again from the
//   last version seen → on 410 Gone, relist → on any error (API server restart, network drop), back off
//   exponentially and relist. Bookmarks keep the version fresh so re-watches rarely hit 410.
import type { KubeConfig } from '@kubernetes/client-node';
import { Watch } from '@kubernetes/client-node';
import type { Logger } from '../logger.js';

export interface Listed<T> {
  readonly items: readonly T[];
  readonly resourceVersion: string;
}

export interface ListWatchOptions<T> {
  readonly kc: KubeConfig;
  /** Collection path for the watch, e.g. /api/v1/pods. */
  readonly path: string;
  readonly fieldSelector?: string;
  readonly list: () => Promise<Listed<T>>;
  /** A full list replaced the view. */
  readonly onList: (items: readonly T[]) => void;
  readonly onEvent: (type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: T) => void;
  /** Anything was heard from the API server (list, event, bookmark). */
  readonly onSync?: () => void;
  readonly onRestart?: (cause: 'gone' | 'error' | 'closed') => void;
  readonly logger: Logger;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** The API server ends each watch after this long; bounds how long a silently dead stream can hang. */
  readonly watchTimeoutSeconds?: number;
  readonly listTimeoutMs?: number;
}

export interface ListWatchHandle {
  /** Resolves after the first full list has been applied. */
  readonly synced: Promise<void>;
  stop(): void;
}

type WatchEnd = { kind: 'gone' } | { kind: 'closed'; rv: string } | { kind: 'error'; err: unknown };

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export function startListWatch<T extends { metadata?: { resourceVersion?: string } }>(
  o: ListWatchOptions<T>,
): ListWatchHandle {
  const stopper = new AbortController();
  const watch = new Watch(o.kc);
  let current: AbortController | undefined;
  let markSynced: () => void = () => undefined;
  const synced = new Promise<void>((r) => (markSynced = r));
  const initial = o.backoffInitialMs ?? 250;
  const max = o.backoffMaxMs ?? 10_000;

  function watchOnce(rv: string): Promise<WatchEnd> {
    return new Promise<WatchEnd>((resolve) => {
      let last = rv;
      let gone = false;
      const query = {
        resourceVersion: rv,
        allowWatchBookmarks: true,
        timeoutSeconds: o.watchTimeoutSeconds ?? 300,
        ...(o.fieldSelector !== undefined ? { fieldSelector: o.fieldSelector } : {}),
      };
      const onEvent = (type: string, obj: T & { code?: number }) => {
        if (type === 'ERROR') {
          gone = obj.code === 410;
          current?.abort();
          return;
        }
        last = obj.metadata?.resourceVersion ?? last;
        o.onSync?.();
        if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') o.onEvent(type, obj);
      };
      const done = (err: unknown) => {
        if (gone) resolve({ kind: 'gone' });
        else if (err !== null && err !== undefined && !stopper.signal.aborted)
          resolve({ kind: 'error', err });
        else resolve({ kind: 'closed', rv: last });
      };
      watch.watch(o.path, query, onEvent, done).then(
        (c) => {
          current = c;
          if (stopper.signal.aborted) c.abort();
        },
        (err: unknown) => resolve({ kind: 'error', err }),
      );
    });
  }

  async function relist(): Promise<string> {
    const { items, resourceVersion } = await withTimeout(
      o.list(),
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
        failures = 0;
        for (;;) {
          const started = Date.now();
          const end = await watchOnce(rv);
          if (stopper.signal.aborted) return;
          if (end.kind === 'error') throw end.err;
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
