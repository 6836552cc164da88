// The refreshing credential cache; it implements CredentialIssuer, so callers cannot tell it from STS.
// Keyed by everything that shapes the session (issuer.keyFor: role, session name, external ID, tags),
// unlike kube2iam, which keys by role ARN and reuses the first caller's session
// (https://github.com/jtblin/kube2iam).
//  - one in-flight STS call per key (aws/eks-pod-identity-agent#34);
//  - refresh in the background once fewer than refreshBeforeSeconds remain; pods are only ever served
//    credentials with more than minRemainingSeconds left (SDKs refresh 5-15 min before expiry and would
//    otherwise come back in a tight loop: jtblin/kube2iam#346, uswitch/kiam#90);
//  - on STS errors or throttling, still-servable credentials keep flowing and retries back off
//    exponentially per key;
//  - prefetch when a pod appears (kiam's design), retain() drops keys no live pod needs
//    (aws/eks-pod-identity-agent#171);
//  - jitter: pods prefetched together (a node boot, a rollout) would otherwise all refresh in the same
//    sweep, and all retry in lockstep after an STS outage. Each session's refresh starts at a random point
//    in the first half of its refresh window, and each retry delay is shortened by up to a third, at random.
//  - a pod with nothing servable waits for the STS call at most waitMs, then gets a 503 while the call
//    goes on and fills the cache for later requests: SDKs give up on IMDS after 1 s (botocore's
//    AWS_METADATA_SERVICE_TIMEOUT, the JS SDK's fromInstanceMetadata timeout), and a prompt 503 tells
//    them more than their own timeout does.
import { ImdsError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Clock, PodIdentity } from '../pods/types.js';
import type { CredentialIssuer, CredentialRequest, Credentials } from './types.js';

export interface CredentialCacheOptions {
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /**
   * The refresh window opens when fewer seconds than this remain (default 2700: 45 min); each session's
   * background refresh starts at a random point in the window's first half.
   */
  readonly refreshBeforeSeconds?: number;
  /** Credentials with this many seconds or fewer left are never served (default 1500: 25 min). */
  readonly minRemainingSeconds?: number;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** How often due refreshes and failed prefetches are retried without a request; 0 = no timer. */
  readonly sweepIntervalMs?: number;
  /** [0, 1) for the jitter of refreshes and retries; tests pass a fixed one (default Math.random). */
  readonly random?: () => number;
  /** How long a request waits for an STS call before its 503 (default 0: as long as the call takes). */
  readonly waitMs?: number;
}

export interface CredentialCache extends CredentialIssuer {
  keyFor(req: CredentialRequest): string;
  /** Fetches in the background unless servable credentials or a call are already there; never rejects. */
  prefetch(req: CredentialRequest): Promise<void>;
  /** Drops every entry whose key is not in `keys`; returns how many were dropped. */
  retain(keys: Iterable<string>): number;
  /** Refreshes entries that are due and retries failed ones whose backoff elapsed. */
  sweep(): Promise<void>;
  size(): number;
  close(): void;
}

interface Entry {
  req: CredentialRequest;
  creds?: Credentials;
  inflight?: Promise<Credentials>;
  failures: number;
  retryAt: number;
  /** When the background refresh of `creds` starts (jittered within the refresh window). */
  refreshAt?: number;
  lastError?: ImdsError;
}

export function createCredentialCache(
  issuer: CredentialIssuer,
  opts: CredentialCacheOptions,
): CredentialCache {
  const { clock, metrics, logger } = opts;
  const minRemainingMs = (opts.minRemainingSeconds ?? 1500) * 1000;
  const refreshBeforeMs = Math.max((opts.refreshBeforeSeconds ?? 2700) * 1000, minRemainingMs);
  const backoffInitialMs = opts.backoffInitialMs ?? 1000;
  const backoffMaxMs = opts.backoffMaxMs ?? 60_000;
  const random = opts.random ?? Math.random;
  // Refreshes start somewhere in the first half of the window (45 → 35 min left by default).
  const refreshSpreadMs = (refreshBeforeMs - minRemainingMs) / 2;
  const entries = new Map<string, Entry>();
  const event = (e: string) => metrics.credentialCache.inc({ event: e });
  const gauge = () => metrics.credentialCacheEntries.set(entries.size);

  // A key is a pure function of the (immutable) pod object, role and external ID, and building one
  // serialises the whole STS input (~3 µs): remember it per pod object, which the pod view hands out
  // unchanged until the pod changes.
  const keys = new WeakMap<PodIdentity, { roleArn: string; externalId?: string; key: string }>();
  const keyFor = (req: CredentialRequest): string => {
    const m = keys.get(req.pod);
    if (m !== undefined && m.roleArn === req.roleArn && m.externalId === req.externalId) return m.key;
    const key =
      issuer.keyFor?.(req) ??
      JSON.stringify([req.roleArn, req.externalId ?? '', req.pod.namespace, req.pod.name, req.pod.uid]);
    keys.set(req.pod, {
      roleArn: req.roleArn,
      ...(req.externalId !== undefined && { externalId: req.externalId }),
      key,
    });
    return key;
  };
  const remaining = (c: Credentials) => c.expiration.getTime() - clock();
  const servable = (e: Entry): e is Entry & { creds: Credentials } =>
    e.creds !== undefined && remaining(e.creds) > minRemainingMs;
  const due = (e: Entry) =>
    e.inflight === undefined &&
    clock() >= e.retryAt &&
    (e.creds === undefined ? e.failures > 0 : clock() >= (e.refreshAt ?? 0));

  function entryFor(key: string, req: CredentialRequest): Entry {
    let e = entries.get(key);
    if (e === undefined) {
      e = { req, failures: 0, retryAt: 0 };
      entries.set(key, e);
      gauge();
    }
    e.req = req;
    return e;
  }

  function fetch(key: string, e: Entry): Promise<Credentials> {
    const p = issuer.issue(e.req).then(
      (creds) => {
        e.creds = creds;
        e.refreshAt = creds.expiration.getTime() - refreshBeforeMs + random() * refreshSpreadMs;
        e.failures = 0;
        e.retryAt = 0;
        delete e.lastError;
        if (remaining(creds) <= minRemainingMs) {
          logger.warn({ key, expiration: creds.expiration }, 'STS session shorter than the serving minimum');
        }
        return creds;
      },
      (err: unknown) => {
        e.failures += 1;
        const delay = Math.round(
          Math.min(backoffMaxMs, backoffInitialMs * 2 ** (e.failures - 1)) * (1 - random() / 3),
        );
        e.retryAt = clock() + delay;
        e.lastError = err instanceof ImdsError ? err : new ImdsError('CREDENTIALS_UNAVAILABLE', String(err));
        event('error');
        logger.warn(
          { key, failures: e.failures, retryInMs: delay, err: e.lastError.detail },
          'credential fetch failed',
        );
        throw e.lastError;
      },
    );
    e.inflight = p;
    void p
      .finally(() => {
        if (e.inflight === p) delete e.inflight;
      })
      .catch(() => undefined);
    return p;
  }

  function background(key: string, e: Entry, kind: 'refresh' | 'prefetch'): Promise<void> {
    event(kind);
    return fetch(key, e).then(
      () => undefined,
      () => undefined,
    );
  }

  /** The call `p` goes on whatever happens here; only this request stops waiting for it. */
  function waitFor(p: Promise<Credentials>): Promise<Credentials> {
    const waitMs = opts.waitMs ?? 0;
    if (waitMs <= 0) return p;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        event('wait_timeout');
        reject(new ImdsError('CREDENTIALS_UNAVAILABLE', `no STS answer within ${waitMs} ms; still waiting`));
      }, waitMs);
    });
    return Promise.race([p, late]).finally(() => clearTimeout(timer));
  }

  const timer =
    (opts.sweepIntervalMs ?? 15_000) > 0
      ? setInterval(() => void cache.sweep(), opts.sweepIntervalMs ?? 15_000)
      : undefined;
  timer?.unref();

  const cache: CredentialCache = {
    keyFor,
    async issue(req) {
      const key = keyFor(req);
      const e = entryFor(key, req);
      if (servable(e)) {
        event(e.failures > 0 ? 'stale_served' : 'hit');
        if (due(e)) void background(key, e, 'refresh');
        return e.creds;
      }
      if (e.inflight !== undefined) {
        event('miss');
        return waitFor(e.inflight);
      }
      if (clock() < e.retryAt) {
        throw e.lastError ?? new ImdsError('CREDENTIALS_UNAVAILABLE', 'STS backing off');
      }
      event('miss');
      return waitFor(fetch(key, e));
    },
    async prefetch(req) {
      const key = keyFor(req);
      const e = entryFor(key, req);
      if (servable(e) || e.inflight !== undefined || clock() < e.retryAt) return;
      return background(key, e, 'prefetch');
    },
    retain(keys) {
      const keep = new Set(keys);
      let dropped = 0;
      for (const key of entries.keys()) {
        if (!keep.has(key)) {
          entries.delete(key);
          dropped += 1;
          event('evict');
        }
      }
      gauge();
      return dropped;
    },
    async sweep() {
      const work = [...entries].filter(([, e]) => due(e)).map(([k, e]) => background(k, e, 'refresh'));
      await Promise.all(work);
    },
    size: () => entries.size,
    close() {
      if (timer !== undefined) clearInterval(timer);
    },
  };
  return cache;
}
