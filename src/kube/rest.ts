// A small Kubernetes REST client on undici: the agent makes a handful of JSON calls (list, watch, create,
// patch) and @kubernetes/client-node cost ~75 MB of RSS just to import (bench/identity/RESULTS.md).
// Every request waits for the client-side token bucket (backoff.ts) and is aborted, connection and all,
// when its deadline passes: a rejected promise alone would leave the API server streaming a list nobody
// reads. A 429's Retry-After travels on the KubeApiError so the caller waits at least that long.
import { Pool, request as undiciRequest } from '../undici.js';
import { DEFAULT_RATE_LIMIT, createTokenBucket, parseRetryAfter, type RateLimit } from './backoff.js';
import type { KubeTarget } from './kubeconfig.js';
import { WatchStreamError, parseEvent, readLines, type WatchEvent } from './watch-stream.js';

export { WatchStreamError } from './watch-stream.js';

/** A non-2xx answer; `code` is the HTTP status (as client-node's ApiException, so callers read `.code`). */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  constructor(
    readonly code: number,
    message: string,
    readonly reason?: string,
    /** From Retry-After (429 from API Priority and Fairness, some 5xx): wait at least this long. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export type { WatchEvent, WatchEventType } from './watch-stream.js';

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  readonly query?: Query;
  readonly body?: unknown;
  readonly contentType?: string;
  readonly signal?: AbortSignal;
  /** Accept header (default application/json), e.g. a PartialObjectMetadata media type. */
  readonly accept?: string;
  /** false: not counted by the token bucket (the later pages of one list, which took its token). */
  readonly throttle?: boolean;
  /** This request's deadline instead of the client's timeoutMs. */
  readonly timeoutMs?: number;
}

export interface ListOptions {
  readonly signal?: AbortSignal;
  readonly accept?: string;
  /** Applied to each item as its page arrives (undefined drops it), so only the kept form accumulates. */
  readonly keep?: (item: unknown) => unknown;
}

export interface WatchOptions {
  readonly signal?: AbortSignal;
  /** Longest silence (no event, no bookmark) before the stream counts as dead. */
  readonly idleTimeoutMs?: number;
  readonly accept?: string;
}

export interface KubeClient {
  readonly server: string;
  request<T>(method: string, path: string, o?: RequestOptions): Promise<T>;
  /** All pages of a collection (limit/continue), with the list's resourceVersion. */
  list<T>(path: string, query?: Query, o?: ListOptions): Promise<{ items: T[]; resourceVersion: string }>;
  /** Resolves when the server ends the stream (or `signal` aborts it); rejects on errors. */
  watch<T>(path: string, query: Query, onEvent: (e: WatchEvent<T>) => void, o?: WatchOptions): Promise<void>;
  close(): Promise<void>;
}

export interface KubeClientOptions {
  /** Deadline of one request (headers and body); a watch has its idle timeout instead. */
  readonly timeoutMs?: number;
  /**
   * Deadline of one list page and of a watch's response headers (default 60 s). API Priority and
   * Fairness queues a request for up to a quarter of the API server's --request-timeout (60 s by
   * default) before it runs, and ends none sooner than that: a shorter deadline aborts requests that
   * were about to be served and sends them to the back of the queue again. Measured in bench/scale
   * (500 agents starting together): with 10 s, 69 s to sync and 3,867 requests beyond the 3,000
   * needed; with 60 s, 50 s and 88 beyond (the 429s, each retried after its Retry-After).
   * https://kubernetes.io/docs/concepts/cluster-administration/flow-control/
   */
  readonly listTimeoutMs?: number;
  readonly pageSize?: number;
  /** Client-side limit on request starts (default QPS 5, burst 10, as client-go); qps 0 = none. */
  readonly rateLimit?: RateLimit;
  readonly now?: () => number;
  /** Every answer's HTTP status, or 'error' when none came (refused, reset, aborted): for the metrics. */
  readonly onResponse?: (status: number | 'error') => void;
}

export function createKubeClient(t: KubeTarget, o: KubeClientOptions = {}): KubeClient {
  const url = new URL(t.server);
  const prefix = url.pathname.replace(/\/+$/, '');
  const timeoutMs = o.timeoutMs ?? 10_000;
  const listTimeoutMs = o.listTimeoutMs ?? 60_000;
  const now = o.now ?? Date.now;
  const bucket = createTokenBucket(o.rateLimit ?? DEFAULT_RATE_LIMIT, now);
  const pool = new Pool(url.origin, {
    connect: {
      ...(t.ca !== undefined ? { ca: t.ca } : {}),
      ...(t.cert !== undefined ? { cert: t.cert, key: t.key } : {}),
      ...(t.tlsServerName !== undefined ? { servername: t.tlsServerName } : {}),
      rejectUnauthorized: !t.insecureSkipTlsVerify,
    },
  });

  const target = (path: string, query: Query = {}) => {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) qs.set(k, String(v));
    const s = qs.toString();
    return `${prefix}${path}${s === '' ? '' : `?${s}`}`;
  };

  /** Starts a request and returns it once a 2xx status is in; `signal` aborts it (socket included). */
  async function send(
    method: string,
    path: string,
    r: RequestOptions,
    bodyTimeout: number,
    headersTimeout = timeoutMs,
  ) {
    const body = r.body === undefined ? undefined : JSON.stringify(r.body);
    const fail = (err: unknown) => Promise.reject(netError(method, path, err, r.signal));
    const attempt = async () => {
      if (r.throttle !== false) await bucket.take(r.signal);
      return undiciRequest(pool, {
        method: method as 'GET',
        path: target(path, r.query),
        headers: {
          accept: r.accept ?? 'application/json',
          'user-agent': 'imdsgate',
          ...(body !== undefined ? { 'content-type': r.contentType ?? 'application/json' } : {}),
          ...(t.token !== undefined ? { authorization: `Bearer ${t.token.get()}` } : {}),
        },
        ...(body !== undefined ? { body } : {}),
        ...(r.signal !== undefined ? { signal: r.signal } : {}),
        headersTimeout,
        bodyTimeout,
      });
    };
    const observed = async () => {
      try {
        const res = await attempt();
        o.onResponse?.(res.statusCode);
        return res;
      } catch (err) {
        // A request its caller stopped (a view's stop, a watch ended by an ERROR event) got no answer
        // because nobody wanted one: not counted. Its own deadline passing is counted.
        const reason = r.signal?.aborted === true ? (r.signal.reason as Error | undefined) : undefined;
        if (reason === undefined || reason.name === 'TimeoutError') o.onResponse?.('error');
        return fail(err);
      }
    };
    let res = await observed();
    // A rotated service-account token: re-read the file once and retry (client-go does the same).
    if (res.statusCode === 401 && t.token?.refresh() === true) {
      await res.body.dump();
      res = await observed();
    }
    if (res.statusCode >= 200 && res.statusCode < 300) return res;
    const retryAfterMs = parseRetryAfter(res.headers['retry-after'], now());
    const text = await res.body.text().catch(() => '');
    throw apiError(method, path, res.statusCode, text, retryAfterMs);
  }

  /** The caller's signal, or-ed with this request's own deadline. */
  const deadline = (signal: AbortSignal | undefined, ms: number) => {
    const own = AbortSignal.timeout(ms);
    return signal === undefined ? own : AbortSignal.any([signal, own]);
  };

  async function request<T>(method: string, path: string, r: RequestOptions = {}): Promise<T> {
    const ms = r.timeoutMs ?? timeoutMs;
    const signal = deadline(r.signal, ms);
    const res = await send(method, path, { ...r, signal }, ms, ms);
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      throw netError(method, path, err, signal);
    }
    try {
      return (text === '' ? undefined : JSON.parse(text)) as T;
    } catch {
      throw new KubeApiError(res.statusCode, `${method} ${path}: response is not JSON`);
    }
  }

  return {
    server: t.server,
    request,
    async list<T>(path: string, query: Query = {}, l: ListOptions = {}) {
      const items: T[] = [];
      let cont: string | undefined;
      let resourceVersion = '';
      do {
        const page = await request<{
          items?: T[];
          metadata?: { resourceVersion?: string; continue?: string };
        }>('GET', path, {
          // A continue token carries its own resourceVersion; the API server refuses both together.
          query: {
            ...query,
            limit: o.pageSize ?? 500,
            continue: cont,
            ...(cont ? { resourceVersion: undefined } : {}),
          },
          ...(l.signal !== undefined ? { signal: l.signal } : {}),
          ...(l.accept !== undefined ? { accept: l.accept } : {}),
          timeoutMs: listTimeoutMs,
          // One list, one token: 50,000 service accounts are 100 pages, which at 5 per second would
          // outlast the list's deadline.
          ...(cont !== undefined ? { throttle: false } : {}),
        });
        for (const item of page?.items ?? []) {
          const kept = l.keep === undefined ? item : (l.keep(item) as T | undefined);
          if (kept !== undefined) items.push(kept);
        }
        resourceVersion = page?.metadata?.resourceVersion ?? resourceVersion;
        cont = page?.metadata?.continue || undefined;
      } while (cont !== undefined);
      return { items, resourceVersion };
    },
    async watch<T>(path: string, query: Query, onEvent: (e: WatchEvent<T>) => void, w: WatchOptions = {}) {
      const signal = w.signal;
      let res;
      try {
        res = await send(
          'GET',
          path,
          {
            query: { ...query, watch: true },
            ...(signal ? { signal } : {}),
            ...(w.accept !== undefined ? { accept: w.accept } : {}),
          },
          w.idleTimeoutMs ?? 330_000,
          listTimeoutMs,
        );
      } catch (err) {
        if (signal?.aborted) return;
        throw err;
      }
      try {
        await readLines(res.body, (line) => {
          // Aborted by a handler (an ERROR event): no later line of the same chunk is delivered.
          if (signal?.aborted) throw new WatchStreamError('aborted');
          onEvent(parseEvent<T>(line));
        });
      } catch (err) {
        if (signal?.aborted) return;
        throw err instanceof WatchStreamError || err instanceof KubeApiError
          ? err
          : netError('WATCH', path, err);
      } finally {
        res.body.destroy();
      }
    },
    close: () => pool.destroy(),
  };
}

function apiError(method: string, path: string, code: number, text: string, retryAfterMs?: number) {
  let status: { message?: string; reason?: string } = {};
  try {
    status = JSON.parse(text) as typeof status;
  } catch {
    // not a Status object (a proxy's page): the status code says enough
  }
  const detail = status.message ?? text.slice(0, 200);
  return new KubeApiError(
    code,
    `${method} ${path}: HTTP ${code}${detail ? `: ${detail}` : ''}`,
    status.reason,
    retryAfterMs,
  );
}

function netError(method: string, path: string, err: unknown, signal?: AbortSignal): Error {
  // AbortSignal.timeout aborts with a TimeoutError DOMException: say so rather than "aborted".
  const reason = signal?.aborted ? (signal.reason as Error | undefined) : undefined;
  const why = reason?.name === 'TimeoutError' ? 'timed out (request aborted)' : (err as Error).message;
  return new Error(`${method} ${path}: ${why}`, { cause: err });
}
