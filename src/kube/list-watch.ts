// A list+watch loop that does not give up, paced like client-go's reflector
// (k8s.io/client-go/tools/cache/reflector.go; client-node 1.4's ListWatch stopped on the first non-410
// error and had no backoff):
//   list → watch from the list's resourceVersion → on a clean end, watch again from the last version
//   seen (bookmarks keep it fresh, so re-watches rarely hit 410) → on 410 Gone, relist → on any error
//   (API server restart, network drop, a dead stream, a malformed line, a 429), back off with jitter, at
//   least as long as Retry-After says, and relist.
//
// Which resourceVersion a list asks for (https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions):
//  - the pod view: "0", any version, served from the API server's watch cache without touching etcd, at
//    start-up and on every relist after an error. A quorum list ("") or a "not older than" list while the
//    cache is (re)initialising is delegated to etcd, where a fieldSelector list of pods reads every pod
//    of the cluster: measured in bench/scale, 100 agents relisting that way after an API server restart
//    cost it 92 s of CPU and 150 s to resync. A "0" list during initialisation is answered 429 with
//    Retry-After instead (ResilientWatchCacheInitialization, 1.31+), which the loop honours.
//  - after 410 Gone: "" (most recent, consistent), as client-go's reflector does;
//  - views that grow with the cluster (namespaces, service accounts; `paginate`): always "" in pages of
//    500. The watch cache ignores `limit` for "0" and would answer 50,000 service accounts in one piece;
//    a consistent list is paginated and, from Kubernetes 1.31 (ConsistentListFromCache), also served from
//    the watch cache (https://kubernetes.io/docs/reference/using-api/api-concepts/#semantics-for-get-and-list);
//    on older servers it reads etcd a page at a time, at start-up and after errors only.
// The cost of "0" is staleness: a lagging API server's cache may answer with an older state than etcd's,
// even older than what the view already applied. That is the same lag a watch event already has on its
// way to us, the watch that follows replays every change after the list's version, and what the pod view
// cannot tolerate — not hearing from the API server at all — is caught by the fail-closed staleness guard
// (pods/watcher.ts, --max-pod-view-staleness-seconds; the namespace and service-account views in
// kube/views.ts use the same guard): identity paths answer 503 instead of guessing.
import type { Logger } from '../logger.js';
import { DEFAULT_BACKOFF, abortableSleep, backoffDelay, type BackoffPolicy } from './backoff.js';
import { KubeApiError, type KubeClient } from './rest.js';

export interface ListWatchOptions<T> {
  readonly client: KubeClient;
  /** Collection path, e.g. /api/v1/pods. */
  readonly path: string;
  readonly fieldSelector?: string;
  /** Accept header for list and watch (a PartialObjectMetadata media type for metadata-only views). */
  readonly accept?: { readonly list: string; readonly watch: string };
  /**
   * Consistent lists ("") in pages instead of resourceVersion=0: for collections that grow with the
   * cluster (namespaces, service accounts), where a "0" list, which the watch cache answers in one piece
   * whatever the limit, would spike the agent's memory (and the API server's) by the whole collection.
   */
  readonly paginate?: boolean;
  /** Per item, as each page arrives: the form the view keeps, or undefined to drop it. */
  readonly keep?: (item: T) => T | undefined;
  /** A full list replaced the view. */
  readonly onList: (items: readonly T[]) => void;
  readonly onEvent: (type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: T) => void;
  /** Anything was heard from the API server (list, event, bookmark). */
  readonly onSync?: () => void;
  readonly onRestart?: (cause: 'gone' | 'error' | 'closed') => void;
  readonly logger: Logger;
  /** Backoff between failed attempts (default 800 ms → 10 s, jitter 1.0; backoff.ts says why). */
  readonly backoff?: Partial<BackoffPolicy>;
  /** @deprecated use backoff.initialMs */
  readonly backoffInitialMs?: number;
  /** @deprecated use backoff.maxMs */
  readonly backoffMaxMs?: number;
  /** [0, 1) for the jitter (default Math.random). */
  readonly random?: () => number;
  /** The API server ends each watch after this long (jittered up to twice, as the reflector). */
  readonly watchTimeoutSeconds?: number;
  /** Silence after which a stream counts as dead (bookmarks arrive about once a minute). */
  readonly idleTimeoutMs?: number;
  /** The whole list (every page) is aborted after this long (default 60 s, the API server's own limit). */
  readonly listTimeoutMs?: number;
}

export interface ListWatchHandle {
  /** Resolves after the first full list has been applied. */
  readonly synced: Promise<void>;
  stop(): void;
}

type WatchEnd = { kind: 'gone' } | { kind: 'closed'; rv: string } | { kind: 'error'; err: unknown };
type Meta = { metadata?: { resourceVersion?: string } };
type Status = { code?: number; reason?: string; message?: string; details?: { retryAfterSeconds?: number } };

const isGone = (s: Status) => s.code === 410 || s.reason === 'Expired' || s.reason === 'Gone';
const sleep = (ms: number, signal: AbortSignal) => abortableSleep(ms, signal).catch(() => undefined);

export function startListWatch<T extends Meta>(o: ListWatchOptions<T>): ListWatchHandle {
  const stopper = new AbortController();
  const random = o.random ?? Math.random;
  const baseTimeout = o.watchTimeoutSeconds ?? 300;
  const idleTimeoutMs = o.idleTimeoutMs ?? (baseTimeout + 30) * 1000;
  const policy: BackoffPolicy = {
    ...DEFAULT_BACKOFF,
    ...(o.backoffInitialMs !== undefined ? { initialMs: o.backoffInitialMs } : {}),
    ...(o.backoffMaxMs !== undefined ? { maxMs: o.backoffMaxMs } : {}),
    ...o.backoff,
  };
  let current: AbortController | undefined;
  let markSynced: () => void = () => undefined;
  const synced = new Promise<void>((r) => (markSynced = r));
  // "" after a 410 (consistent read) or for paginated views, else "0" (the watch cache).
  let lastSeen = '';
  let lastUnavailable = false;
  const listVersion = () => (o.paginate === true || lastUnavailable ? '' : '0');

  async function watchOnce(rv: string): Promise<WatchEnd> {
    const ctl = new AbortController();
    current = ctl;
    if (stopper.signal.aborted) ctl.abort();
    let end: WatchEnd | undefined;
    const query = {
      resourceVersion: rv,
      allowWatchBookmarks: true,
      // Spread over [t, 2t) so the watches of all nodes do not end (and re-open) together.
      timeoutSeconds: Math.floor(baseTimeout * (1 + random())),
      ...(o.fieldSelector !== undefined ? { fieldSelector: o.fieldSelector } : {}),
    };
    const onEvent = ({ type, object }: { type: string; object: T }) => {
      if (type === 'ERROR') {
        const st = object as Status;
        const retry = st.details?.retryAfterSeconds;
        end = isGone(st)
          ? { kind: 'gone' }
          : {
              kind: 'error',
              err: new KubeApiError(
                st.code ?? 500,
                `watch ERROR event: ${st.code ?? '?'} ${st.message ?? ''}`,
                st.reason,
                retry !== undefined ? retry * 1000 : undefined,
              ),
            };
        ctl.abort();
        return;
      }
      // BOOKMARK events carry only a resourceVersion: it is what the next watch resumes from.
      lastSeen = object.metadata?.resourceVersion ?? lastSeen;
      o.onSync?.();
      if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') o.onEvent(type, object);
    };
    try {
      await o.client.watch<T>(o.path, query, onEvent, {
        signal: ctl.signal,
        idleTimeoutMs,
        ...(o.accept !== undefined ? { accept: o.accept.watch } : {}),
      });
    } catch (err) {
      return err instanceof KubeApiError && err.code === 410 ? { kind: 'gone' } : { kind: 'error', err };
    }
    return end ?? { kind: 'closed', rv: lastSeen };
  }

  async function relist(): Promise<string> {
    const rv = listVersion();
    const signal = AbortSignal.any([stopper.signal, AbortSignal.timeout(o.listTimeoutMs ?? 60_000)]);
    let listed;
    try {
      listed = await o.client.list<T>(
        o.path,
        { resourceVersion: rv, ...(o.fieldSelector !== undefined ? { fieldSelector: o.fieldSelector } : {}) },
        {
          signal,
          ...(o.accept !== undefined ? { accept: o.accept.list } : {}),
          ...(o.keep !== undefined ? { keep: o.keep as (item: unknown) => unknown } : {}),
        },
      );
    } catch (err) {
      if (err instanceof KubeApiError && err.code === 410) lastUnavailable = true;
      throw err;
    }
    lastUnavailable = false;
    lastSeen = listed.resourceVersion;
    o.onList(listed.items);
    o.onSync?.();
    markSynced();
    return listed.resourceVersion;
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
          if (end.kind === 'gone') {
            lastUnavailable = true;
            break;
          }
          rv = end.rv;
          // A watch the server ends at once, again and again, must not become a hot loop.
          if (Date.now() - started < 1000) await sleep(backoffDelay(1, policy, random), stopper.signal);
        }
      } catch (err) {
        if (stopper.signal.aborted) return;
        o.onRestart?.('error');
        // A 429 with Retry-After is API Priority and Fairness saying when to come back: wait that long,
        // spread by the jitter, without escalating the backoff (client-go's rest client retries a 429
        // after Retry-After the same way). Measured in bench/scale: counting each 429 as a failure
        // pushed agents into 30-60 s waits after an API server restart.
        const retryAfter = err instanceof KubeApiError ? err.retryAfterMs : undefined;
        const throttled = err instanceof KubeApiError && err.code === 429 && retryAfter !== undefined;
        if (!throttled) failures += 1;
        const delay = throttled
          ? Math.round(retryAfter * (1 + policy.jitter * random()))
          : Math.max(backoffDelay(failures, policy, random), retryAfter ?? 0);
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
