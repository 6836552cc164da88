// The list+watch loop's decisions with a scripted client: when it re-watches, relists and backs off.
// (The real API server, its 410s and a restart are in test/integration/identity.)
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/logger.js';
import { startListWatch } from '../../../src/kube/list-watch.js';
import {
  KubeApiError,
  WatchStreamError,
  type KubeClient,
  type Query,
  type WatchEvent,
} from '../../../src/kube/rest.js';

type Obj = { metadata: { name: string; resourceVersion: string } };
type WatchStep = (q: Query, emit: (e: WatchEvent<Obj>) => void, signal?: AbortSignal) => Promise<void>;
type ListStep = (signal?: AbortSignal) => Promise<{ items: Obj[]; resourceVersion: string }>;

const obj = (name: string, rv: string): Obj => ({ metadata: { name, resourceVersion: rv } });
const listed =
  (rv: string, ...names: string[]): ListStep =>
  async () => ({
    items: names.map((n) => obj(n, rv)),
    resourceVersion: rv,
  });
/** Never ends until aborted, like a healthy watch. */
const hang: WatchStep = (_q, _e, signal) =>
  new Promise((r) => signal?.addEventListener('abort', () => r(), { once: true }));

/** Never answers, but gives up when its signal aborts, as the real client does. */
const hangList: ListStep = (signal) =>
  new Promise((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason as Error)));

function scripted(lists: ListStep[], watches: WatchStep[]) {
  const calls: string[] = [];
  const queries: Query[] = [];
  const client: KubeClient = {
    server: 'http://test',
    request: () => Promise.reject(new Error('unused')),
    list: (_p, q = {}, o) => {
      calls.push(`list@${String(q.resourceVersion)}`);
      return (lists.shift() ?? hangList)(o?.signal) as never;
    },
    watch: (_p, q, onEvent, o) => {
      calls.push(`watch@${String(q.resourceVersion)}`);
      queries.push(q);
      return (watches.shift() ?? hang)(q, onEvent as (e: WatchEvent<Obj>) => void, o?.signal);
    },
    close: async () => undefined,
  };
  return { client, calls, queries };
}

function start(client: KubeClient, over: { listTimeoutMs?: number; random?: () => number } = {}) {
  const seen: string[] = [];
  const restarts: string[] = [];
  const logs: string[] = [];
  const h = startListWatch<Obj>({
    client,
    path: '/api/v1/pods',
    fieldSelector: 'spec.nodeName=n',
    logger: createLogger('warn', { write: (s: string) => logs.push(s) }),
    backoff: { initialMs: 10, maxMs: 40 },
    random: () => 0,
    onList: (items) => seen.push(`list:${items.map((i) => i.metadata.name).join(',')}`),
    onEvent: (type, o) => seen.push(`${type}:${o.metadata.name}`),
    onRestart: (c) => restarts.push(c),
    ...over,
  });
  return { h, seen, restarts, logs };
}

const until = async (f: () => boolean, ms = 2000) => {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('startListWatch', () => {
  it('lists, applies events, and re-watches from the last bookmark when the server ends the watch', async () => {
    const { client, calls } = scripted(
      [listed('10', 'a')],
      [
        async (_q, emit) => {
          emit({ type: 'ADDED', object: obj('b', '11') });
          emit({ type: 'BOOKMARK', object: obj('', '15') });
        },
      ],
    );
    const { h, seen, restarts } = start(client);
    await h.synced;
    await until(() => calls.length === 3);
    h.stop();
    // The first list is served from the watch cache (resourceVersion=0); the re-watch resumes from the
    // bookmark's version.
    expect(calls).toEqual(['list@0', 'watch@10', 'watch@15']);
    expect(seen).toEqual(['list:a', 'ADDED:b']);
    expect(restarts).toEqual(['closed']);
  });

  it.each([
    [
      'an ERROR event with code 410',
      async (_q: Query, emit: (e: WatchEvent<Obj>) => void) =>
        emit({ type: 'ERROR', object: { code: 410, reason: 'Expired' } as unknown as Obj }),
    ],
    ['an HTTP 410', () => Promise.reject(new KubeApiError(410, 'gone'))],
  ] as [string, WatchStep][])('relists at once after %s (no backoff, counted as gone)', async (_n, step) => {
    const { client, calls } = scripted([listed('10', 'a'), listed('20', 'b')], [step]);
    const { h, seen, restarts, logs } = start(client);
    await until(() => calls.length === 4);
    h.stop();
    // After 410 the relist is a consistent read (""), as client-go's reflector does.
    expect(calls).toEqual(['list@0', 'watch@10', 'list@', 'watch@20']);
    expect(seen).toEqual(['list:a', 'list:b']);
    expect(restarts).toEqual(['gone']);
    expect(logs).toEqual([]);
  });

  it.each([
    ['a dropped stream', () => Promise.reject(new Error('socket hang up'))],
    ['a malformed line', () => Promise.reject(new WatchStreamError('malformed watch line: {"ty'))],
    [
      'an ERROR event other than 410',
      async (_q: Query, emit: (e: WatchEvent<Obj>) => void) =>
        emit({ type: 'ERROR', object: { code: 500, message: 'etcd down' } as unknown as Obj }),
    ],
  ] as [string, WatchStep][])('backs off and relists after %s, logging why', async (_n, step) => {
    const { client, calls } = scripted([listed('10', 'a'), listed('20', 'a')], [step]);
    const { h, restarts, logs } = start(client);
    await until(() => calls.length === 4);
    h.stop();
    // A relist after an error is served from the watch cache again (never etcd).
    expect(calls).toEqual(['list@0', 'watch@10', 'list@0', 'watch@20']);
    expect(restarts).toEqual(['error']);
    expect(logs.join()).toContain('list/watch failed');
  });

  it('a server that lists but cannot watch gets exponential backoff, not a hot loop', async () => {
    const fail: WatchStep = () => Promise.reject(new Error('watch refused'));
    const { client, calls } = scripted(
      Array.from({ length: 6 }, () => listed('1', 'a')),
      Array.from({ length: 6 }, () => fail),
    );
    const { h, logs } = start(client);
    await until(() => logs.length >= 4);
    h.stop();
    const delays = logs.map((l) => (JSON.parse(l) as { retryInMs: number }).retryInMs);
    expect(delays.slice(0, 4)).toEqual([10, 20, 40, 40]);
    expect(calls.filter((c) => c.startsWith('list')).length).toBeLessThanOrEqual(6);
  });

  it('stays unsynced while the list fails (401/403 or a hung list), then syncs when it works', async () => {
    const { client } = scripted(
      [
        () => Promise.reject(new KubeApiError(403, 'GET /api/v1/pods: HTTP 403: pods is forbidden')),
        hangList,
        listed('5', 'a'),
      ],
      [],
    );
    const { h, seen, logs } = start(client, { listTimeoutMs: 50 });
    let synced = false;
    void h.synced.then(() => (synced = true));
    await until(() => logs.length === 1);
    expect(synced).toBe(false);
    expect(logs[0]).toContain('pods is forbidden');
    await until(() => synced);
    // The hung list was aborted through its signal (the real client then closes the connection).
    expect(logs[1]).toMatch(/timeout/i);
    expect(seen).toEqual(['list:a']);
    h.stop();
  });

  it('stop() ends a running watch and the loop', async () => {
    const { client, calls } = scripted([listed('1')], [hang]);
    const { h } = start(client);
    await until(() => calls.length === 2);
    h.stop();
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toEqual(['list@0', 'watch@1']);
  });

  it('jitters each backoff delay by up to 100% (random injected), capped at max × 2', async () => {
    const fail: WatchStep = () => Promise.reject(new Error('watch refused'));
    const rolls = [0.5, 0.25, 0.999, 0.75, 0.3, 0.1];
    const { client } = scripted(
      Array.from({ length: 6 }, () => listed('1', 'a')),
      Array.from({ length: 6 }, () => fail),
    );
    const { h, logs } = start(client, { random: () => rolls.shift() ?? 0 });
    await until(() => logs.length >= 4);
    h.stop();
    const delays = logs.map((l) => (JSON.parse(l) as { retryInMs: number }).retryInMs);
    // Rolls alternate: each watch's timeoutSeconds takes one, then its backoff takes the next, so the
    // backoffs 10, 20, 40, 40 ms were jittered by 0.25, 0.75, 0.1 and 0 (rolls exhausted).
    expect(delays.slice(0, 4)).toEqual([13, 35, 44, 40]);
  });

  it('spreads watch timeouts over [t, 2t) so the nodes do not all re-watch together', async () => {
    const { client, queries } = scripted([listed('1')], [async () => undefined, hang]);
    const rolls = [0, 0.5];
    const { h } = start(client, { random: () => rolls.shift() ?? 0.5 });
    await until(() => queries.length === 2);
    h.stop();
    expect(queries.map((q) => q.timeoutSeconds)).toEqual([300, 450]);
    expect(queries.every((q) => q.allowWatchBookmarks === true)).toBe(true);
  });

  it.each([
    [
      'an HTTP 429 with Retry-After',
      () => Promise.reject(new KubeApiError(429, 'too many', 'TooManyRequests', 300)),
    ],
    [
      'an ERROR event 429 with details.retryAfterSeconds',
      async (_q: Query, emit: (e: WatchEvent<Obj>) => void) =>
        emit({ type: 'ERROR', object: { code: 429, details: { retryAfterSeconds: 0.3 } } as unknown as Obj }),
    ],
  ] as [string, WatchStep][])('honours Retry-After on a watch: %s', async (_n, step) => {
    const { client, calls } = scripted([listed('10', 'a'), listed('20', 'a')], [step]);
    const t0 = Date.now();
    const { h, logs } = start(client);
    await until(() => calls.length >= 3);
    const waited = Date.now() - t0;
    h.stop();
    expect(JSON.parse(logs[0] ?? '{}')).toMatchObject({ retryInMs: 300 });
    expect(waited).toBeGreaterThanOrEqual(290);
    expect(calls.slice(0, 3)).toEqual(['list@0', 'watch@10', 'list@0']);
  });

  it('honours Retry-After on a list (429 from API Priority and Fairness)', async () => {
    const { client, calls } = scripted(
      [() => Promise.reject(new KubeApiError(429, 'too many', 'TooManyRequests', 250)), listed('3')],
      [],
    );
    const { h, logs } = start(client);
    await until(() => calls.length === 3);
    h.stop();
    expect(JSON.parse(logs[0] ?? '{}')).toMatchObject({ retryInMs: 250 });
    expect(calls).toEqual(['list@0', 'list@0', 'watch@3']);
  });

  it('429s with Retry-After do not escalate the backoff; other failures do', async () => {
    const tooMany = () => Promise.reject(new KubeApiError(429, 'too many', 'TooManyRequests', 20));
    const { client } = scripted(
      [tooMany, tooMany, tooMany, () => Promise.reject(new Error('refused')), listed('3')],
      [],
    );
    const { h, logs } = start(client);
    await until(() => logs.length >= 4);
    h.stop();
    const got = logs.map((l) => JSON.parse(l) as { retryInMs: number; failures: number });
    expect(got.map((g) => g.retryInMs)).toEqual([20, 20, 20, 10]);
    expect(got.map((g) => g.failures)).toEqual([0, 0, 0, 1]);
  });

  it('a relist answered 410 falls back to a consistent read', async () => {
    const fail: WatchStep = () => Promise.reject(new Error('reset'));
    const { client, calls } = scripted(
      [listed('10'), () => Promise.reject(new KubeApiError(410, 'too old')), listed('30')],
      [fail],
    );
    const { h } = start(client);
    await until(() => calls.length === 5);
    h.stop();
    expect(calls).toEqual(['list@0', 'watch@10', 'list@0', 'list@', 'watch@30']);
  });

  it('paginate: views that grow with the cluster always list consistently (""), in pages', async () => {
    const fail: WatchStep = () => Promise.reject(new Error('reset'));
    const { client, calls } = scripted([listed('10'), listed('20')], [fail]);
    const h = startListWatch<Obj>({
      client,
      path: '/api/v1/serviceaccounts',
      paginate: true,
      logger: createLogger('error', { write: () => undefined }),
      backoff: { initialMs: 5, maxMs: 5 },
      random: () => 0,
      onList: () => undefined,
      onEvent: () => undefined,
    });
    await until(() => calls.length >= 3);
    h.stop();
    expect(calls.slice(0, 3)).toEqual(['list@', 'watch@10', 'list@']);
  });
});
