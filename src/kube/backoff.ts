// How the kube client paces itself against the API server, as client-go does where it matters on a
// cluster of thousands of nodes (one agent per node):
//  - jittered exponential backoff: client-go's reflector backs off 800 ms → 30 s with jitter 1.0
//    (k8s.io/client-go/tools/cache/reflector.go, NewExponentialBackoffManager), so agents that lost the
//    API server together (a control-plane restart) do not all relist in the same instant. The cap here
//    is 10 s (up to 20 s with the jitter): every refused connection while the API server restarts
//    counts as a failure, so after a restart of 20-80 s (bench/scale/RESULTS.md) a 30 s cap (60 s with
//    the jitter) would keep agents away for up to a minute after the server is back; the jitter, not
//    the cap, spreads the relists;
//  - Retry-After: API Priority and Fairness answers 429 with Retry-After when a priority level's queues
//    are full (https://kubernetes.io/docs/concepts/cluster-administration/flow-control/); a client that
//    retries sooner only adds to the queue;
//  - a token bucket on every request, like client-go's default rest.Config (QPS 5, burst 10).
// Time and randomness are parameters, so tests drive them.

export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
  /** Each delay d becomes d × (1 + jitter × random()), as wait.Jitter in apimachinery. */
  readonly jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 800, maxMs: 10_000, jitter: 1 };

/** Delay before retry number `failures` (1 = the first retry); never more than maxMs × (1 + jitter). */
export function backoffDelay(failures: number, p: BackoffPolicy, random: () => number): number {
  const base = Math.min(p.maxMs, p.initialMs * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (1 + p.jitter * random()));
}

/** Retry-After in ms (delta-seconds or an HTTP date; RFC 9110 §10.2.3), capped; undefined when absent/bad. */
export function parseRetryAfter(
  value: string | string[] | undefined,
  now: number,
  capMs = 60_000,
): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  const s = v.trim();
  let ms: number;
  if (/^\d+$/.test(s)) ms = Number(s) * 1000;
  else {
    // An HTTP date names its weekday and GMT; Date.parse alone would also take "-1" or "1.5".
    const at = /GMT$/.test(s) ? Date.parse(s) : NaN;
    if (Number.isNaN(at)) return undefined;
    ms = Math.max(0, at - now);
  }
  return Math.min(ms, capMs);
}

export interface RateLimit {
  /** Requests per second, sustained. 0 turns the limit off. */
  readonly qps: number;
  /** Requests allowed at once after a quiet period. */
  readonly burst: number;
}

export const DEFAULT_RATE_LIMIT: RateLimit = { qps: 5, burst: 10 };

export interface TokenBucket {
  /** Resolves when a request may start (at once while tokens are left); rejects if `signal` aborts first. */
  take(signal?: AbortSignal): Promise<void>;
}

export function createTokenBucket(
  r: RateLimit,
  now: () => number = Date.now,
  sleep: (ms: number, signal?: AbortSignal) => Promise<void> = abortableSleep,
): TokenBucket {
  if (r.qps <= 0) return { take: async () => undefined };
  let tokens = r.burst;
  let last = now();
  // Each caller reserves its token up front (tokens may go negative): FIFO without a queue.
  return {
    async take(signal) {
      const t = now();
      tokens = Math.min(r.burst, tokens + ((t - last) / 1000) * r.qps);
      last = t;
      tokens -= 1;
      if (tokens >= 0) return;
      const wait = (-tokens / r.qps) * 1000;
      try {
        await sleep(wait, signal);
      } catch (err) {
        tokens += 1; // not used: give the reservation back
        throw err;
      }
    },
  };
}

/** setTimeout as a promise that rejects with the signal's reason when it aborts. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason as Error);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
