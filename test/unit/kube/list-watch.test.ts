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
type ListStep = () => Promise<{ items: Obj[]; resourceVersion: string }>;

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

function scripted(lists: ListStep[], watches: WatchStep[]) {
  const calls: string[] = [];
  const client: KubeClient = {
    server: 'http://test',
    request: () => Promise.reject(new Error('unused')),
    list: () => {
      calls.push('list');
      return (lists.shift() ?? (hang as unknown as ListStep))() as never;
    },
    watch: (_p, q, onEvent, o) => {
      calls.push(`watch@${String(q.resourceVersion)}`);
      return (watches.shift() ?? hang)(q, onEvent as (e: WatchEvent<Obj>) => void, o?.signal);
    },
    close: async () => undefined,
  };
  return { client, calls };
}

function start(client: KubeClient, over: { listTimeoutMs?: number } = {}) {
  const seen: string[] = [];
  const restarts: string[] = [];
  const logs: string[] = [];
  const h = startListWatch<Obj>({
    client,
    path: '/api/v1/pods',
    fieldSelector: 'spec.nodeName=n',
    logger: createLogger('warn', { write: (s: string) => logs.push(s) }),
    backoffInitialMs: 10,
    backoffMaxMs: 40,
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
    expect(calls).toEqual(['list', 'watch@10', 'watch@15']);
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
    expect(calls).toEqual(['list', 'watch@10', 'list', 'watch@20']);
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
    expect(calls).toEqual(['list', 'watch@10', 'list', 'watch@20']);
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
    expect(calls.filter((c) => c === 'list').length).toBeLessThanOrEqual(6);
  });

  it('stays unsynced while the list fails (401/403 or a hung list), then syncs when it works', async () => {
    const { client } = scripted(
      [
        () => Promise.reject(new KubeApiError(403, 'GET /api/v1/pods: HTTP 403: pods is forbidden')),
        () => new Promise(() => undefined),
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
    expect(logs[1]).toContain('timed out after 50 ms');
    expect(seen).toEqual(['list:a']);
    h.stop();
  });

  it('stop() ends a running watch and the loop', async () => {
    const { client, calls } = scripted([listed('1')], [hang]);
    const { h } = start(client);
    await until(() => calls.length === 2);
    h.stop();
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toEqual(['list', 'watch@1']);
  });
});
