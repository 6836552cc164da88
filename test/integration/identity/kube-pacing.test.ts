// The kube client's reflector-like behaviour against the real kube-apiserver (issue 14): lists from the
// watch cache (resourceVersion=0), a request aborted at its deadline closes its connection (seen from a
// TCP relay in front of the API server), and a watch that gets 410 relists with a consistent read.
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { fromKubeconfigFile } from '../../../src/kube/kubeconfig.js';
import { startListWatch } from '../../../src/kube/list-watch.js';
import { KubeApiError, createKubeClient, type KubeClient, type Query } from '../../../src/kube/rest.js';
import { createLogger } from '../../../src/logger.js';
import { envState } from './support.js';

const st = envState();
const target = fromKubeconfigFile(st.kube.adminKubeconfig);
const clients: KubeClient[] = [];
const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f().catch(() => undefined);
  await Promise.all(clients.map((c) => c.close()));
});
const client = (server = target.server, timeoutMs?: number) => {
  // A list's pages have their own, longer deadline (listTimeoutMs): both set to the one given.
  const c = createKubeClient(
    { ...target, server },
    { ...(timeoutMs ? { timeoutMs, listTimeoutMs: timeoutMs } : {}) },
  );
  clients.push(c);
  return c;
};
const logger = createLogger('error', { write: () => undefined });

/** A TCP relay to the API server that records when each client connection closes. */
async function relay() {
  const u = new URL(target.server);
  const closedAt: number[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((c) => {
    const up = connect(Number(u.port), u.hostname);
    sockets.add(c).add(up);
    c.pipe(up).pipe(c);
    c.on('close', () => (closedAt.push(Date.now()), up.destroy()));
    c.on('error', () => undefined);
    up.on('error', () => c.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return { url: `https://127.0.0.1:${(server.address() as { port: number }).port}`, closedAt };
}

async function compactEtcd(): Promise<void> {
  const post = async (path: string, body: object) => {
    const res = await fetch(`${st.etcd.endpoint}${path}`, { method: 'POST', body: JSON.stringify(body) });
    expect(res.status).toBe(200);
    return (await res.json()) as { header: { revision: string } };
  };
  const { header } = await post('/v3/kv/range', { key: 'AA==' });
  await post('/v3/kv/compaction', { revision: header.revision, physical: true });
}

describe('kube client pacing on the real API server', () => {
  it('lists with resourceVersion=0 (watch cache) and "not older than" the version it saw', async () => {
    const c = client();
    const any = await c.list<{ metadata: { name: string } }>('/api/v1/namespaces', { resourceVersion: '0' });
    expect(any.items.map((n) => n.metadata.name)).toContain('default');
    expect(any.resourceVersion).toMatch(/^\d+$/);
    const newer = await c.list('/api/v1/namespaces', { resourceVersion: any.resourceVersion });
    expect(BigInt(newer.resourceVersion)).toBeGreaterThanOrEqual(BigInt(any.resourceVersion));
  });

  it('a request past its deadline is aborted: its connection closes then, not when the server answers', async () => {
    // A version far ahead of etcd: the API server holds the list while its cache "catches up" (~3 s),
    // then answers 504 — a real server-side hang to time out on.
    const ahead = { resourceVersion: '999999999' };
    const slow = client();
    const t0 = Date.now();
    const answered = await slow.list('/api/v1/namespaces', ahead).catch((e: unknown) => e);
    expect(answered).toBeInstanceOf(KubeApiError);
    expect((answered as KubeApiError).code).toBe(504);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2000);

    const r = await relay();
    const c = client(r.url, 400);
    const t1 = Date.now();
    await expect(c.list('/api/v1/namespaces', ahead)).rejects.toThrow(/timed out \(request aborted\)/);
    await new Promise((res) => setTimeout(res, 200));
    expect(r.closedAt.length).toBeGreaterThanOrEqual(1);
    expect(r.closedAt[0]! - t1).toBeLessThan(1500);
  });

  it('a watch that gets 410 Gone relists with a consistent read (resourceVersion "")', async () => {
    const ns = `kp-${randomBytes(3).toString('hex')}`;
    const admin = client();
    await admin.request('POST', '/api/v1/namespaces', { body: { metadata: { name: ns } } });
    cleanup.push(() => admin.request('DELETE', `/api/v1/namespaces/${ns}`));
    const lists: string[] = [];
    const names: string[] = [];
    const real = client();
    const spy: KubeClient = {
      ...real,
      list: (p, q?: Query, o?) => (lists.push(String(q?.resourceVersion)), real.list(p, q, o)),
    };
    const restarts: string[] = [];
    // limitranges are served without the watch cache in test/env/up, so a watch reaches etcd and a
    // compacted version is a real 410.
    const h = startListWatch<{ metadata?: { name?: string; resourceVersion?: string } }>({
      client: spy,
      path: `/api/v1/namespaces/${ns}/limitranges`,
      logger,
      watchTimeoutSeconds: 1,
      onList: () => undefined,
      onEvent: (_t, o) => names.push(o.metadata?.name ?? ''),
      onRestart: (c) => restarts.push(c),
    });
    cleanup.push(async () => h.stop());
    await h.synced;
    const lr = { metadata: { name: 'lr' }, spec: { limits: [{ type: 'Container' }] } };
    await admin.request('POST', `/api/v1/namespaces/${ns}/limitranges`, { body: lr });
    const until = async (what: string, f: () => boolean) => {
      for (let i = 0; i < 200 && !f(); i++) await new Promise((r) => setTimeout(r, 50));
      expect(f(), `${what}: lists ${lists.join()} restarts ${restarts.join()}`).toBe(true);
    };
    await until('event seen', () => names.includes('lr'));
    // Move etcd two revisions past what the watch saw (a watch from R starts at R+1), and compact: the
    // next re-watch (within 2 s) gets 410.
    for (const bump of ['1', '2'])
      await admin.request('PATCH', `/api/v1/namespaces/${ns}`, {
        body: { metadata: { labels: { bump } } },
        contentType: 'application/merge-patch+json',
      });
    await compactEtcd();
    await until('relisted', () => lists.length >= 2);
    h.stop();
    expect(lists.slice(0, 2)).toEqual(['0', '']);
    expect(restarts).toContain('gone');
  });
});
