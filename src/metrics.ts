// Every metric is defined here, once. Names follow Prometheus conventions: imdsgate_ prefix, _total on
// counters, _seconds on durations. No label ever carries a pod name or an IP (cardinality, privacy);
// namespace is the finest label. docs/metrics.md is kept in step by a unit test.
import { createRequire } from 'node:module';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The package version (dist/ and src/ both sit one level below package.json). */
export const VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

/** A state the metrics read at scrape time; serve() wires the live checks in (see wireState). */
export interface ScrapedState {
  /** Resolves to true when the agent is ready (the same check as /readyz). */
  ready(): Promise<boolean>;
  /** Whether pod metadata traffic can reach the agent, and the reason when not (netfilter/interception.ts). */
  interception(): { readonly ok: boolean; readonly reason: string } | undefined;
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export function createMetrics(registry: Registry = new Registry(), opts: { defaults?: boolean } = {}) {
  if (opts.defaults !== false) collectDefaultMetrics({ register: registry });
  const r = [registry];
  // Until serve() wires the live checks in: not ready, interception unknown (no series).
  let state: ScrapedState = { ready: () => Promise.resolve(false), interception: () => undefined };
  const metrics = {
    registry,
    /** Replaces the state the scrape-time gauges read (serve() calls it once its parts exist). */
    wireState(s: ScrapedState) {
      state = s;
    },
    buildInfo: new Gauge({
      name: 'imdsgate_build_info',
      help: 'Always 1; labels carry the version',
      labelNames: ['version', 'node_version', 'node_major'],
      registers: r,
    }),
    // Computed at scrape time, so the gauge is true whether or not anything requests /readyz.
    ready: new Gauge({
      name: 'imdsgate_ready',
      help: '1 when the agent reports ready (evaluated at scrape time, as /readyz)',
      registers: r,
      async collect() {
        this.set((await state.ready().catch(() => false)) ? 1 : 0);
      },
    }),
    interceptionOk: new Gauge({
      name: 'imdsgate_interception_ok',
      help: '1 when pod metadata traffic can reach the agent; 0 with the reason (interception self-check)',
      labelNames: ['reason'],
      registers: r,
      collect() {
        const s = state.interception();
        this.reset();
        if (s !== undefined) this.set({ reason: s.ok ? '' : s.reason }, s.ok ? 1 : 0);
      },
    }),
    requests: new Counter({
      name: 'imdsgate_requests_total',
      help: 'Pod requests by route class, method and status',
      labelNames: ['route', 'method', 'status'],
      registers: r,
    }),
    requestDuration: new Histogram({
      name: 'imdsgate_request_duration_seconds',
      help: 'Time to answer a pod request, by route class',
      labelNames: ['route'],
      buckets: LATENCY_BUCKETS,
      registers: r,
    }),
    connectionsOpen: new Gauge({
      name: 'imdsgate_connections_open',
      help: 'Front-door connections currently open (all sources)',
      registers: r,
    }),
    connectionsRefused: new Counter({
      name: 'imdsgate_connections_refused_total',
      help:
        'Front-door connections or requests refused by a limit, by reason ' +
        '(source_connections|total_connections|source_requests|first_byte_timeout|request_timeout)',
      labelNames: ['reason'],
      registers: r,
    }),
    decisions: new Counter({
      name: 'imdsgate_decisions_total',
      help: 'Role decisions by outcome (allow|deny) and typed reason',
      labelNames: ['outcome', 'reason', 'pod_namespace'],
      registers: r,
    }),
    tokensMinted: new Counter({
      name: 'imdsgate_tokens_minted_total',
      help: 'IMDSv2 session tokens issued to pods',
      registers: r,
    }),
    tokenRejections: new Counter({
      name: 'imdsgate_token_rejections_total',
      help: 'Token requests or token-bearing requests refused, by reason',
      labelNames: ['reason'],
      registers: r,
    }),
    upstreamDuration: new Histogram({
      name: 'imdsgate_upstream_request_duration_seconds',
      help: 'Upstream IMDS round trips, by status class (2xx..5xx, error)',
      labelNames: ['status_class'],
      buckets: LATENCY_BUCKETS,
      registers: r,
    }),
    upstreamErrors: new Counter({
      name: 'imdsgate_upstream_errors_total',
      help: 'Upstream IMDS failures by kind (timeout|connect|session|invalid: redirect, odd status or body over the cap)',
      labelNames: ['kind'],
      registers: r,
    }),
    credentialCache: new Counter({
      name: 'imdsgate_credential_cache_events_total',
      help: 'Credential cache events (hit|miss|prefetch|refresh|stale_served|evict|error|wait_timeout)',
      labelNames: ['event'],
      registers: r,
    }),
    credentialCacheEntries: new Gauge({
      name: 'imdsgate_credential_cache_entries',
      help: 'Sessions currently cached',
      registers: r,
    }),
    stsRequests: new Counter({
      name: 'imdsgate_sts_requests_total',
      help: 'STS calls by API and outcome (success or the STS error code)',
      labelNames: ['api', 'outcome'],
      registers: r,
    }),
    stsDuration: new Histogram({
      name: 'imdsgate_sts_request_duration_seconds',
      help: 'STS call latency by API',
      labelNames: ['api'],
      buckets: LATENCY_BUCKETS,
      registers: r,
    }),
    podsKnown: new Gauge({
      name: 'imdsgate_pods_known',
      help: 'Live pods on this node indexed by IP',
      registers: r,
    }),
    podViewLastSync: new Gauge({
      name: 'imdsgate_pod_view_last_sync_timestamp_seconds',
      help: 'Unix time of the last list or watch event applied to the pod view',
      registers: r,
    }),
    podViewStaleness: new Gauge({
      name: 'imdsgate_pod_view_staleness_seconds',
      help: 'Seconds since the pod view last heard from the API server',
      registers: r,
    }),
    podWatchRestarts: new Counter({
      name: 'imdsgate_pod_watch_restarts_total',
      help: 'Pod watch restarts by cause (gone|error|closed)',
      labelNames: ['cause'],
      registers: r,
    }),
    podIpConflicts: new Counter({
      name: 'imdsgate_pod_ip_conflicts_total',
      help: 'Requests refused because two live pods claimed one IP',
      registers: r,
    }),
    unknownPodWaits: new Counter({
      name: 'imdsgate_unknown_pod_waits_total',
      help:
        'Requests from unknown IPs that waited for the watch, by outcome (found|timeout|over_limit: ' +
        'too many already waiting, answered as unknown without waiting)',
      labelNames: ['outcome'],
      registers: r,
    }),
    sandboxWaits: new Counter({
      name: 'imdsgate_sandbox_binding_waits_total',
      help:
        'Requests whose sender was not the sandbox recorded for the pod the view names (or whose address ' +
        'was quarantined) and that waited for the view, by outcome (bound|refused|over_limit: too many ' +
        'already waiting, answered without waiting)',
      labelNames: ['outcome'],
      registers: r,
    }),
    kubeRequests: new Counter({
      name: 'imdsgate_kube_requests_total',
      help:
        'Requests to the Kubernetes API server by answer (2xx|3xx|4xx|429: throttled by API Priority and ' +
        'Fairness or a warming watch cache, honoured as its Retry-After says|5xx|error: no answer)',
      labelNames: ['code'],
      registers: r,
    }),
    eventsEmitted: new Counter({
      name: 'imdsgate_kube_events_total',
      help: 'Kubernetes Events about denials, by result (sent|suppressed|error)',
      labelNames: ['result'],
      registers: r,
    }),
    rulesInstalled: new Gauge({
      name: 'imdsgate_rules_installed',
      help: '1 when the interception rules of a family are in place',
      labelNames: ['family'],
      registers: r,
    }),
    rulesRepairs: new Counter({
      name: 'imdsgate_rules_repairs_total',
      help: 'Times the reconcile loop found the rules missing or altered and restored them',
      labelNames: ['family'],
      registers: r,
    }),
    rulesReconcileErrors: new Counter({
      name: 'imdsgate_rules_reconcile_errors_total',
      help: 'Reconcile passes that failed',
      labelNames: ['family'],
      registers: r,
    }),
    rulesReconcileDuration: new Histogram({
      name: 'imdsgate_rules_reconcile_duration_seconds',
      help: 'Time of one reconcile pass',
      buckets: LATENCY_BUCKETS,
      registers: r,
    }),
  };
  metrics.buildInfo.set(
    {
      version: VERSION,
      node_version: process.versions.node,
      node_major: process.versions.node.split('.')[0],
    },
    1,
  );
  zeroClosedLabelSets(metrics);
  return metrics;
}

const KUBE_ANSWERS = ['2xx', '3xx', '4xx', '429', '5xx', 'error'] as const;

/** The `code` label of imdsgate_kube_requests_total for an HTTP status (429 on its own) or 'error'. */
export function kubeAnswer(status: number | 'error'): (typeof KUBE_ANSWERS)[number] {
  if (status === 'error' || status < 200 || status > 599) return 'error';
  if (status === 429) return '429';
  return `${Math.floor(status / 100)}xx` as '2xx' | '3xx' | '4xx' | '5xx';
}

/**
 * Counters whose label values form a closed set start at 0 for each value, so the series exist (and
 * rate()/increase() and the alerts work) before the first event: a series that appears only with its first
 * increment hides that increment from increase(). https://prometheus.io/docs/practices/instrumentation/#avoid-missing-metrics
 */
type ClosedSetCounters =
  | 'upstreamErrors'
  | 'credentialCache'
  | 'podWatchRestarts'
  | 'unknownPodWaits'
  | 'sandboxWaits'
  | 'connectionsRefused'
  | 'eventsEmitted'
  | 'kubeRequests'
  | 'tokenRejections';

function zeroClosedLabelSets(m: Record<ClosedSetCounters, Counter<string>>): void {
  const zero = (c: Counter<string>, label: string, values: readonly string[]) => {
    for (const v of values) c.inc({ [label]: v }, 0);
  };
  zero(m.upstreamErrors, 'kind', ['timeout', 'connect', 'session', 'invalid']);
  zero(m.credentialCache, 'event', [
    'hit',
    'miss',
    'prefetch',
    'refresh',
    'stale_served',
    'evict',
    'error',
    'wait_timeout',
  ]);
  zero(m.podWatchRestarts, 'cause', ['gone', 'error', 'closed']);
  zero(m.kubeRequests, 'code', KUBE_ANSWERS);
  zero(m.unknownPodWaits, 'outcome', ['found', 'timeout', 'over_limit']);
  zero(m.sandboxWaits, 'outcome', ['bound', 'refused', 'over_limit']);
  zero(m.connectionsRefused, 'reason', [
    'source_connections',
    'total_connections',
    'source_requests',
    'first_byte_timeout',
    'request_timeout',
  ]);
  zero(m.eventsEmitted, 'result', ['sent', 'suppressed', 'error']);
  // The token rejection reasons of http/pipeline.ts and imds/tokens.ts.
  zero(m.tokenRejections, 'reason', [
    'missing',
    'malformed',
    'expired',
    'bad_signature',
    'versioned',
    'forwarded_for',
    'ttl_invalid',
  ]);
}

export type Metrics = ReturnType<typeof createMetrics>;
