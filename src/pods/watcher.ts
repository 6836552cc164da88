// PodLookup backed by a node-scoped list+watch (spec.nodeName=<node>, as kube2iam's --node: memory stays
// proportional to this node's pods, not the cluster's; jtblin/kube2iam PR #108). An IP not yet known waits
// a bounded time for the watch to deliver it, then fails closed (kube2iam#136, kiam#46: pods ask before
// the agent has seen them). Every found pod is also checked against the node (sandbox.ts): a request from
// a sandbox other than the one recorded for the pod waits the same bounded time for the view to catch up
// (the new pod's status), then fails closed.
import type { V1Pod } from '@kubernetes/client-node';
import { startListWatch, type ListWatchHandle } from '../kube/list-watch.js';
import type { KubeClient } from '../kube/rest.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { PodIndex, canonicalIp, type IndexChange, type IndexedPod } from './index.js';
import { createLeaseReader, firstSignal } from './leases.js';
import { createRouteTable } from './routes.js';
import { SandboxBindings, type SandboxBindingMode, type SandboxLookup } from './sandbox.js';
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
  /** --sandbox-binding; auto when unset. */
  readonly sandboxBinding?: SandboxBindingMode;
  /** --ipam-lease-dir: host-local's lease directory (leases.ts); '' or unset: no lease signal. */
  readonly ipamLeaseDir?: string;
  /** The node's routes (/proc, /sys) when unset. */
  readonly sandboxes?: SandboxLookup;
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
  const bindings = new SandboxBindings(
    o.sandboxBinding ?? 'auto',
    o.sandboxes ?? nodeSignals(o.ipamLeaseDir),
  );
  const listeners = new Set<(c: Exclude<IndexChange, { kind: 'none' }>) => void>();
  const waiters = new Map<string, Set<() => void>>();
  let ready = false;
  let lastSync = 0;
  const fieldSelector = `spec.nodeName=${o.nodeName}`;

  const emit = (c: IndexChange) => {
    if (c.kind === 'none') return;
    follow(bindings, c);
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
  // for the whole wait. Past these caps a request is answered at once with what the view says (fail closed).
  const maxPerIp = o.maxWaitersPerIp ?? 16;
  const maxTotal = o.maxWaiters ?? 256;
  const waitingPerIp = new Map<string, number>();
  let waiting = 0;
  const mayWait = (ip: string) => waiting < maxTotal && (waitingPerIp.get(ip) ?? 0) < maxPerIp;
  const enter = (ip: string) => {
    waiting++;
    waitingPerIp.set(ip, (waitingPerIp.get(ip) ?? 0) + 1);
  };
  const leave = (ip: string) => {
    waiting--;
    const n = (waitingPerIp.get(ip) ?? 1) - 1;
    if (n === 0) waitingPerIp.delete(ip);
    else waitingPerIp.set(ip, n);
  };

  function waitFor(ip: string, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      let set = waiters.get(ip);
      if (set === undefined) waiters.set(ip, (set = new Set()));
      set.add(done);
      function done() {
        clearTimeout(timer);
        waiters.get(ip)?.delete(done);
        if (waiters.get(ip)?.size === 0) waiters.delete(ip);
        resolve();
      }
    });
  }

  // A TCP connection belongs to the sandbox that made its handshake: a later sandbox on the same IP cannot
  // speak on it (it would need the connection's sequence numbers, RFC 9293 §3.4.1). So a connection the
  // node's signal verified for a pod stays verified, and keep-alive requests skip the route or lease read.
  const verified = new WeakMap<object, string>();

  /** The view's answer for ip, checked against the node (sandbox.ts). */
  function resolveOn(ip: string, connection: object | undefined): PodLookupResult {
    const pods = index.claimants(ip);
    if (pods.length === 0) {
      return bindings.isQuarantined(ip) ? { kind: 'unbound', reason: 'address_quarantined' } : UNKNOWN;
    }
    const now = o.clock();
    const seen = connection === undefined ? undefined : verified.get(connection);
    const reasons = pods.map((p) => {
      const key = `${p.uid} ${ip}`;
      if (seen === key) return undefined;
      const reason = bindings.check(p, ip, now);
      if (reason === undefined && connection !== undefined && bindings.usesSignal(p.uid, ip)) {
        verified.set(connection, key);
      }
      return reason;
    });
    const bound = pods.filter((_, i) => reasons[i] === undefined);
    // A Terminating pod whose sandbox is gone no longer counts against the newcomer that now holds the IP;
    // two pods the node cannot tell apart still make a conflict.
    if (bound.length === 1 && bound[0] !== undefined) return { kind: 'found', pod: bound[0] };
    if (pods.length > 1) return { kind: 'conflict' };
    return { kind: 'unbound', reason: reasons[0] ?? 'sandbox_changed' };
  }

  return {
    synced: handle.synced,
    isReady: () => ready && fresh(),
    async byIp(raw, connection, opts): Promise<PodLookupResult> {
      const ip = canonicalIp(raw);
      if (ip === undefined) return UNKNOWN;
      const resolve = (ip: string) => resolveOn(ip, connection);
      const first = resolve(ip);
      if (first.kind === 'found' || first.kind === 'conflict' || o.unknownPodWaitMs === 0) return first;
      if (opts?.wait === false) return first;
      const metric = first.kind === 'unknown' ? o.metrics.unknownPodWaits : o.metrics.sandboxWaits;
      if (!mayWait(ip)) {
        metric.inc({ outcome: 'over_limit' });
        return first;
      }
      // Unknown, or the node disagrees with the view: wait (bounded) for the view to change for this IP.
      const deadline = performance.now() + o.unknownPodWaitMs;
      let r: PodLookupResult = first;
      enter(ip);
      try {
        for (let left = o.unknownPodWaitMs; left > 0; left = deadline - performance.now()) {
          await waitFor(ip, left);
          r = resolve(ip);
          if (r.kind === 'found' || r.kind === 'conflict') break;
        }
      } finally {
        leave(ip);
      }
      if (first.kind === 'unknown') {
        o.metrics.unknownPodWaits.inc({ outcome: r.kind === 'found' ? 'found' : 'timeout' });
      } else {
        o.metrics.sandboxWaits.inc({ outcome: r.kind === 'found' ? 'bound' : 'refused' });
      }
      return r;
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

const UNKNOWN: PodLookupResult = { kind: 'unknown' };

/** A host route where the CNI installs one, else host-local's lease (sandbox.ts). */
function nodeSignals(leaseDir: string | undefined): SandboxLookup {
  const routes = createRouteTable();
  return leaseDir ? firstSignal(routes, createLeaseReader(leaseDir)) : routes;
}

/** Records follow the view: an IP a pod gains is recorded, an IP it loses is quarantined. */
function follow(bindings: SandboxBindings, c: Exclude<IndexChange, { kind: 'none' }>): void {
  const kept = c.kind === 'removed' ? [] : c.pod.ips;
  const lost = c.kind === 'removed' ? c.pod.ips : c.kind === 'updated' ? c.before.ips : [];
  for (const ip of lost) if (!kept.includes(ip)) bindings.forget(c.pod.uid, ip);
  for (const ip of kept) bindings.learn(c.pod.uid, ip);
}
