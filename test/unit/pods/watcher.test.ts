// The pod watcher's readiness with a scripted API client and a hand-moved clock: ready after the first
// list, not ready (fail closed) once nothing has been heard for maxStalenessSeconds, ready again on the
// next event or bookmark. The real API server, its bookmarks and restarts are in test/integration.
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { KubeClient, WatchEvent } from '../../../src/kube/rest.js';
import { createLogger } from '../../../src/logger.js';
import { createMetrics } from '../../../src/metrics.js';
import { startPodWatcher, type PodWatcher } from '../../../src/pods/watcher.js';

const POD = {
  metadata: { name: 'web-0', namespace: 'team-a', uid: 'u1', resourceVersion: '5' },
  spec: { nodeName: 'n1', serviceAccountName: 'web' },
  status: { phase: 'Running', podIP: '169.254.10.2' },
};

function setup(
  maxStalenessSeconds: number,
  wait: { ms: number; perIp?: number; total?: number } = { ms: 0 },
) {
  let now = Date.parse('2030-01-01T00:00:00Z');
  let emit: ((e: WatchEvent<unknown>) => void) | undefined;
  const logs: string[] = [];
  const metrics = createMetrics(new Registry(), { defaults: false });
  const client: KubeClient = {
    server: 'http://test',
    request: () => Promise.reject(new Error('unused')),
    list: async () => ({ items: [POD] as never[], resourceVersion: '5' }),
    watch: (_p, _q, onEvent, o) => {
      emit = onEvent as (e: WatchEvent<unknown>) => void;
      return new Promise<void>((r) => o?.signal?.addEventListener('abort', () => r(), { once: true }));
    },
    close: async () => undefined,
  };
  const watcher = startPodWatcher({
    client,
    nodeName: 'n1',
    unknownPodWaitMs: wait.ms,
    ...(wait.perIp !== undefined ? { maxWaitersPerIp: wait.perIp } : {}),
    ...(wait.total !== undefined ? { maxWaiters: wait.total } : {}),
    maxStalenessSeconds,
    clock: () => now,
    metrics,
    logger: createLogger('info', { write: (s: string) => logs.push(s) }),
  });
  return {
    watcher,
    metrics,
    logs,
    advance: (s: number) => (now += s * 1000),
    bookmark: () => emit?.({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '6' } } }),
  };
}

let watcher: PodWatcher | undefined;
afterEach(() => watcher?.stop());

describe('pod watcher readiness and staleness', () => {
  it('is ready after the first list, stale (not ready) past the limit, and fresh again on a bookmark', async () => {
    const s = setup(180);
    watcher = s.watcher;
    expect(s.watcher.isReady()).toBe(false);
    await s.watcher.synced;
    expect(s.watcher.isReady()).toBe(true);
    expect(await s.watcher.byIp('169.254.10.2')).toMatchObject({ kind: 'found' });
    s.advance(180);
    expect(s.watcher.isReady()).toBe(true);
    s.advance(1);
    expect(s.watcher.isReady()).toBe(false);
    s.bookmark();
    expect(s.watcher.isReady()).toBe(true);
  });

  it('logs the change to stale and back once each', async () => {
    const s = setup(2);
    watcher = s.watcher;
    await s.watcher.synced;
    s.advance(5);
    await new Promise((r) => setTimeout(r, 1100));
    s.bookmark();
    await new Promise((r) => setTimeout(r, 1100));
    const lines = s.logs.map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(lines.filter((m) => m.startsWith('pod view stale'))).toHaveLength(1);
    expect(lines.filter((m) => m.startsWith('pod view fresh again'))).toHaveLength(1);
  });

  it('with 0 never goes stale', async () => {
    const s = setup(0);
    watcher = s.watcher;
    await s.watcher.synced;
    s.advance(86_400);
    expect(s.watcher.isReady()).toBe(true);
  });
});

describe('waiting for an unknown source', () => {
  const settledWithin = async (p: Promise<unknown>, ms: number) =>
    Promise.race([p.then(() => true), new Promise((r) => setTimeout(() => r(false), ms))]);

  it('lets at most maxWaitersPerIp requests of one address wait; the rest are answered unknown at once', async () => {
    const s = setup(0, { ms: 500, perIp: 2, total: 3 });
    watcher = s.watcher;
    await s.watcher.synced;
    const a = [s.watcher.byIp('169.254.10.9'), s.watcher.byIp('169.254.10.9')];
    const t0 = performance.now();
    expect(await s.watcher.byIp('169.254.10.9')).toEqual({ kind: 'unknown' });
    // Another address may still wait, up to the total; then nobody else does.
    const b = s.watcher.byIp('169.254.10.8');
    expect(await s.watcher.byIp('169.254.10.7')).toEqual({ kind: 'unknown' });
    expect(await s.watcher.byIp('169.254.10.6', undefined, { wait: false })).toEqual({ kind: 'unknown' });
    expect(performance.now() - t0).toBeLessThan(100);
    expect(await settledWithin(Promise.all([...a, b]), 50)).toBe(false);
    const m = await s.metrics.unknownPodWaits.get();
    expect(m.values.filter((v) => v.value > 0)).toEqual([{ labels: { outcome: 'over_limit' }, value: 2 }]);
    // The ones that waited end at the deadline, still unknown.
    expect(await Promise.all([...a, b])).toEqual([
      { kind: 'unknown' },
      { kind: 'unknown' },
      { kind: 'unknown' },
    ]);
  });

  it('frees a waiter slot when its wait ends', async () => {
    const s = setup(0, { ms: 100, perIp: 1 });
    watcher = s.watcher;
    await s.watcher.synced;
    const first = s.watcher.byIp('169.254.10.9');
    expect(await settledWithin(s.watcher.byIp('169.254.10.9'), 20)).toBe(true);
    await first;
    expect(await settledWithin(s.watcher.byIp('169.254.10.9'), 50)).toBe(false);
  });
});
