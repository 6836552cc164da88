// PodLookup backed by a node-scoped list+watch (spec.nodeName=<node>, as kube2iam's --node: memory stays
// proportional to this node's pods, not the cluster's; jtblin/kube2iam PR #108). An IP not yet known waits
// a bounded time for the watch to deliver it, then fails closed (kube2iam#136, kiam#46: pods ask before
// the agent has seen them).
import type { V1Pod } from '@kubernetes/client-node';
import { startListWatch, type ListWatchHandle } from '../kube/list-watch.js';
import type { KubeClient } from '../kube/rest.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { PodIndex, canonicalIp, type IndexChange, type IndexedPod } from './index.js';
import type { Clock, PodLookup, PodLookupResult } from './types.js';

export interface PodWatcherOptions {
  readonly client: KubeClient;
  readonly nodeName: string;
  readonly unknownPodWaitMs: number;
  /** Requests from one unknown IP that may wait at once; the rest are answered as unknown at once. */
  readonly maxWaitersPerIp?: number;
  /** Requests from all unknown IPs together that may wait at once. */
  readonly maxWaiters?: number;
  /** Not ready (fail closed) after this long without a list, event or bookmark; 0 = never. */
  readonly maxStalenessSeconds?: number;
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
}

export interface PodWatcher extends PodLookup {
  /** Resolves once the first full list is in. */
  readonly synced: Promise<void>;
  pods(): IterableIterator<IndexedPod>;
  /** Live pods appearing, changing (IP, service account, annotations) and going away. */
  onChange(listener: (change: Exclude<IndexChange, { kind: 'none' }>) => void): () => void;
  stop(): void;
}

export function startPodWatcher(o: PodWatcherOptions): PodWatcher {
  const index = new PodIndex();
  const listeners = new Set<(c: Exclude<IndexChange, { kind: 'none' }>) => void>();
  const waiters = new Map<string, Set<() => void>>();
  let ready = false;
  let lastSync = 0;
  const fieldSelector = `spec.nodeName=${o.nodeName}`;

  const emit = (c: IndexChange) => {
    if (c.kind === 'none') return;
    if (c.kind !== 'removed') for (const ip of c.pod.ips) wake(ip);
    for (const l of listeners) {
      try {
        l(c);
      } catch (err) {
        o.logger.error({ err: (err as Error).message }, 'pod change listener failed');
      }
    }
  };
  const wake = (ip: string) => {
    const set = waiters.get(ip);
    if (set === undefined) return;
    waiters.delete(ip);
    for (const w of set) w();
  };
  const gauge = () => o.metrics.podsKnown.set(index.size);

  const handle: ListWatchHandle = startListWatch<V1Pod>({
    client: o.client,
    path: '/api/v1/pods',
    fieldSelector,
    logger: o.logger,
    ...(o.backoffInitialMs !== undefined ? { backoffInitialMs: o.backoffInitialMs } : {}),
    ...(o.backoffMaxMs !== undefined ? { backoffMaxMs: o.backoffMaxMs } : {}),
    onList: (items) => {
      for (const c of index.replace(items)) emit(c);
      ready = true;
      gauge();
    },
    onEvent: (type, pod) => {
      emit(type === 'DELETED' ? index.remove(pod.metadata?.uid ?? '') : index.apply(pod));
      gauge();
    },
    onSync: () => {
      lastSync = o.clock();
      o.metrics.podViewLastSync.set(lastSync / 1000);
    },
    onRestart: (cause) => o.metrics.podWatchRestarts.inc({ cause }),
  });
  // The API server sends a bookmark on every watch about once a minute, so a healthy view is never more
  // than ~1 min old. Past the limit the view may not know that a deleted pod's IP now belongs to a new pod
  // (IP reuse during a partition between this agent and the API server), so the view stops counting as
  // ready and identity paths fail closed until the API server is heard from again.
  const maxStaleMs = (o.maxStalenessSeconds ?? 0) * 1000;
  const fresh = () => maxStaleMs === 0 || o.clock() - lastSync <= maxStaleMs;
  let wasFresh = true;
  const staleness = setInterval(() => {
    if (lastSync > 0) o.metrics.podViewStaleness.set((o.clock() - lastSync) / 1000);
    if (!ready || fresh() === wasFresh) return;
    wasFresh = !wasFresh;
    const seconds = Math.round((o.clock() - lastSync) / 1000);
    if (wasFresh) o.logger.info({ seconds }, 'pod view fresh again: serving identity paths');
    else
      o.logger.warn({ seconds }, 'pod view stale: identity paths fail closed until the API server answers');
  }, 1000);
  staleness.unref();

  // Waiting is for a pod the watch has not delivered yet (it asks within milliseconds of getting its IP);
  // a source that keeps sending from addresses no pod owns would otherwise park one request per attempt
  // for the whole wait. Past these caps a request is answered as unknown at once (fail closed).
  const maxPerIp = o.maxWaitersPerIp ?? 16;
  const maxTotal = o.maxWaiters ?? 256;
  let waiting = 0;
  const mayWait = (ip: string) => waiting < maxTotal && (waiters.get(ip)?.size ?? 0) < maxPerIp;

  function waitFor(ip: string): Promise<void> {
    waiting++;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, o.unknownPodWaitMs);
      let set = waiters.get(ip);
      if (set === undefined) waiters.set(ip, (set = new Set()));
      set.add(done);
      let settled = false;
      function done() {
        if (settled) return;
        settled = true;
        waiting--;
        clearTimeout(timer);
        waiters.get(ip)?.delete(done);
        if (waiters.get(ip)?.size === 0) waiters.delete(ip);
        resolve();
      }
    });
  }

  return {
    synced: handle.synced,
    isReady: () => ready && fresh(),
    async byIp(raw, opts): Promise<PodLookupResult> {
      const first = index.lookup(raw);
      if (first.kind !== 'unknown') return first;
      const ip = canonicalIp(raw);
      if (ip === undefined || o.unknownPodWaitMs === 0 || opts?.wait === false) return first;
      if (!mayWait(ip)) {
        o.metrics.unknownPodWaits.inc({ outcome: 'over_limit' });
        return first;
      }
      await waitFor(ip);
      const second = index.lookup(ip);
      o.metrics.unknownPodWaits.inc({ outcome: second.kind === 'unknown' ? 'timeout' : 'found' });
      return second;
    },
    pods: () => index.pods(),
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    stop() {
      handle.stop();
      clearInterval(staleness);
      for (const ip of [...waiters.keys()]) wake(ip);
    },
  };
}
