// A small Kubernetes REST client on undici: the agent makes a handful of JSON calls (list, watch, create,
// patch) and @kubernetes/client-node cost ~75 MB of RSS just to import (bench/identity/RESULTS.md).
// Watches are the API server's JSON-lines stream (one WatchEvent per line, split across chunks anywhere):
// https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes
import { Pool, request as undiciRequest } from '../undici.js';
import type { KubeTarget } from './kubeconfig.js';

/** A non-2xx answer; `code` is the HTTP status (as client-node's ApiException, so callers read `.code`). */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  constructor(
    readonly code: number,
    message: string,
    readonly reason?: string,
  ) {
    super(message);
  }
}

/** The watch stream broke its protocol (a line that is not a WatchEvent). */
export class WatchStreamError extends Error {
  override readonly name = 'WatchStreamError';
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
export interface WatchEvent<T> {
  readonly type: WatchEventType;
  readonly object: T;
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  readonly query?: Query;
  readonly body?: unknown;
  readonly contentType?: string;
  readonly signal?: AbortSignal;
}

export interface WatchOptions {
  readonly signal?: AbortSignal;
  /** Longest silence (no event, no bookmark) before the stream counts as dead. */
  readonly idleTimeoutMs?: number;
}

export interface KubeClient {
  readonly server: string;
  request<T>(method: string, path: string, o?: RequestOptions): Promise<T>;
  /** All pages of a collection (limit/continue), with the list's resourceVersion. */
  list<T>(path: string, query?: Query): Promise<{ items: T[]; resourceVersion: string }>;
  /** Resolves when the server ends the stream (or `signal` aborts it); rejects on errors. */
  watch<T>(path: string, query: Query, onEvent: (e: WatchEvent<T>) => void, o?: WatchOptions): Promise<void>;
  close(): Promise<void>;
}

export interface KubeClientOptions {
  readonly timeoutMs?: number;
  readonly pageSize?: number;
}

const WATCH_TYPES = new Set(['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR']);

export function createKubeClient(t: KubeTarget, o: KubeClientOptions = {}): KubeClient {
  const url = new URL(t.server);
  const prefix = url.pathname.replace(/\/+$/, '');
  const timeoutMs = o.timeoutMs ?? 10_000;
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

  async function send(method: string, path: string, r: RequestOptions, bodyTimeout: number) {
    const body = r.body === undefined ? undefined : JSON.stringify(r.body);
    const attempt = () =>
      undiciRequest(pool, {
        method: method as 'GET',
        path: target(path, r.query),
        headers: {
          accept: 'application/json',
          'user-agent': 'imdsgate',
          ...(body !== undefined ? { 'content-type': r.contentType ?? 'application/json' } : {}),
          ...(t.token !== undefined ? { authorization: `Bearer ${t.token.get()}` } : {}),
        },
        ...(body !== undefined ? { body } : {}),
        ...(r.signal !== undefined ? { signal: r.signal } : {}),
        headersTimeout: timeoutMs,
        bodyTimeout,
      });
    let res = await attempt().catch((err: unknown) => Promise.reject(netError(method, path, err)));
    // A rotated service-account token: re-read the file once and retry (client-go does the same).
    if (res.statusCode === 401 && t.token?.refresh() === true) {
      await res.body.dump();
      res = await attempt().catch((err: unknown) => Promise.reject(netError(method, path, err)));
    }
    if (res.statusCode >= 200 && res.statusCode < 300) return res;
    throw apiError(method, path, res.statusCode, await res.body.text().catch(() => ''));
  }

  async function request<T>(method: string, path: string, r: RequestOptions = {}): Promise<T> {
    const res = await send(method, path, r, timeoutMs);
    const text = await res.body.text();
    try {
      return (text === '' ? undefined : JSON.parse(text)) as T;
    } catch {
      throw new KubeApiError(res.statusCode, `${method} ${path}: response is not JSON`);
    }
  }

  return {
    server: t.server,
    request,
    async list<T>(path: string, query: Query = {}) {
      const items: T[] = [];
      let cont: string | undefined;
      let resourceVersion = '';
      do {
        const page = await request<{
          items?: T[];
          metadata?: { resourceVersion?: string; continue?: string };
        }>('GET', path, { query: { ...query, limit: o.pageSize ?? 500, continue: cont } });
        items.push(...(page?.items ?? []));
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
          { query: { ...query, watch: true }, ...(signal ? { signal } : {}) },
          w.idleTimeoutMs ?? 330_000,
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

/** Calls `line` for each non-blank line, newline-terminated or the final unterminated one. */
async function readLines(body: AsyncIterable<Buffer>, line: (s: string) => void): Promise<void> {
  const decoder = new TextDecoder(); // stream mode: a UTF-8 character may straddle two chunks
  let buf = '';
  for await (const chunk of body) {
    let from = buf.length;
    buf += decoder.decode(chunk, { stream: true });
    let nl: number;
    let start = 0;
    while ((nl = buf.indexOf('\n', from)) >= 0) {
      const text = buf.slice(start, nl);
      if (text.trim() !== '') line(text);
      start = nl + 1;
      from = start;
    }
    buf = buf.slice(start);
  }
  buf += decoder.decode();
  if (buf.trim() !== '') line(buf);
}

function parseEvent<T>(line: string): WatchEvent<T> {
  const s = line.trim();
  let e: unknown;
  try {
    e = JSON.parse(s);
  } catch {
    throw new WatchStreamError(`malformed watch line: ${s.slice(0, 80)}`);
  }
  const ev = e as { type?: unknown; object?: unknown };
  if (
    typeof ev.type !== 'string' ||
    !WATCH_TYPES.has(ev.type) ||
    typeof ev.object !== 'object' ||
    !ev.object
  ) {
    throw new WatchStreamError(`not a watch event: ${s.slice(0, 80)}`);
  }
  return { type: ev.type as WatchEventType, object: ev.object as T };
}

function apiError(method: string, path: string, code: number, text: string): KubeApiError {
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
  );
}

function netError(method: string, path: string, err: unknown): Error {
  return new Error(`${method} ${path}: ${(err as Error).message}`, { cause: err });
}
