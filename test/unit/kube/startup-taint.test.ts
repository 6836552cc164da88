// removeStartupTaint's patch shape and retry rules with a scripted client (the real API server, its 422
// on a failed test op and RBAC are in test/integration/identity/startup-taint.test.ts).
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/logger.js';
import { KubeApiError, type KubeClient } from '../../../src/kube/rest.js';
import { removeStartupTaint, startStartupTaintGuard } from '../../../src/kube/startup-taint.js';

const KEY = 'imdsgate.io/agent-not-ready';
type Taint = { key: string; effect: string };
type Call = { method: string; path: string; body?: unknown; contentType?: string | undefined };

/** GETs answer with the next taint list; PATCHes with the next outcome (undefined = 200). */
function scripted(taints: Taint[][], patches: (Error | undefined)[] = []) {
  const calls: Call[] = [];
  const client: KubeClient = {
    server: 'http://test',
    request: async <T>(method: string, path: string, o?: { body?: unknown; contentType?: string }) => {
      calls.push({ method, path, ...(o?.body ? { body: o.body, contentType: o.contentType } : {}) });
      if (method === 'GET') return { spec: { taints: taints.shift() ?? [] } } as T;
      const outcome = patches.shift();
      if (outcome) throw outcome;
      return {} as T;
    },
    list: () => Promise.reject(new Error('unused')),
    watch: () => Promise.reject(new Error('unused')),
    close: async () => undefined,
  };
  return { client, calls };
}

const logs: string[] = [];
const logger = createLogger('debug', { write: (s: string) => logs.push(s) });
const base = { nodeName: 'ip-169-254-0-1.ec2.internal', key: KEY, logger, retryDelayMs: 1 };
const taint = (key: string, effect = 'NoSchedule') => ({ key, effect });

describe('removeStartupTaint', () => {
  it('tests and removes every taint with the key, highest index first, in one JSON patch', async () => {
    const { client, calls } = scripted([[taint(KEY), taint('x'), taint(KEY, 'NoExecute')]]);
    expect(await removeStartupTaint({ ...base, client })).toBe('removed');
    expect(calls).toEqual([
      { method: 'GET', path: '/api/v1/nodes/ip-169-254-0-1.ec2.internal' },
      {
        method: 'PATCH',
        path: '/api/v1/nodes/ip-169-254-0-1.ec2.internal',
        contentType: 'application/json-patch+json',
        body: [
          { op: 'test', path: '/spec/taints/2/key', value: KEY },
          { op: 'remove', path: '/spec/taints/2' },
          { op: 'test', path: '/spec/taints/0/key', value: KEY },
          { op: 'remove', path: '/spec/taints/0' },
        ],
      },
    ]);
  });

  it('is a no-op when the taint is absent (or the node has no taints)', async () => {
    const { client, calls } = scripted([[taint('other')]]);
    expect(await removeStartupTaint({ ...base, client })).toBe('absent');
    expect(calls.map((c) => c.method)).toEqual(['GET']);
    const none = scripted([]);
    expect(await removeStartupTaint({ ...base, client: none.client })).toBe('absent');
  });

  it('when the taints changed in between (422 from the test op, or 409) it retries from a fresh GET', async () => {
    const { client, calls } = scripted(
      [[taint(KEY)], [taint('new'), taint(KEY)], [taint('newer'), taint('new'), taint(KEY)]],
      [new KubeApiError(422, 'test failed'), new KubeApiError(409, 'conflict')],
    );
    expect(await removeStartupTaint({ ...base, client })).toBe('removed');
    expect(
      calls.filter((c) => c.method === 'PATCH').map((c) => (c.body as { path: string }[])[1]?.path),
    ).toEqual(['/spec/taints/0', '/spec/taints/1', '/spec/taints/2']);
  });

  it('gives up after maxAttempts of conflicting changes, with the last error', async () => {
    const conflict = () => new KubeApiError(422, 'test failed');
    const { client, calls } = scripted(
      Array.from({ length: 5 }, () => [taint(KEY)]),
      Array.from({ length: 5 }, conflict),
    );
    await expect(removeStartupTaint({ ...base, client, maxAttempts: 3 })).rejects.toMatchObject({
      code: 422,
    });
    expect(calls.filter((c) => c.method === 'PATCH')).toHaveLength(3);
  });

  it('does not retry a refusal (403 from RBAC or the admission policy) or a missing node', async () => {
    const forbidden = scripted([[taint(KEY)]], [new KubeApiError(403, 'imdsgate may only remove the taint')]);
    await expect(removeStartupTaint({ ...base, client: forbidden.client })).rejects.toMatchObject({
      code: 403,
    });
    expect(forbidden.calls).toHaveLength(2);
    const missing = scripted([]);
    missing.client.request = () => Promise.reject(new KubeApiError(404, 'nodes "x" not found'));
    await expect(removeStartupTaint({ ...base, client: missing.client })).rejects.toMatchObject({
      code: 404,
    });
  });
});

describe('startStartupTaintGuard', () => {
  it('waits for readiness, then removes the taint, retrying failures with backoff', async () => {
    const { client, calls } = scripted([[taint(KEY)], [taint(KEY)]], [new Error('connect ECONNREFUSED')]);
    let notReady = ['identity not synced'];
    const guard = startStartupTaintGuard({
      ...base,
      client,
      notReady: async () => notReady,
      pollMs: 5,
      backoffMaxMs: 5,
    });
    await new Promise((r) => setTimeout(r, 40));
    expect(calls).toEqual([]);
    notReady = [];
    expect(await guard.done).toBe('removed');
    expect(calls.map((c) => c.method)).toEqual(['GET', 'PATCH', 'GET', 'PATCH']);
    expect(logs.join()).toContain('could not remove the startup taint');
  });

  it('stop() before ready ends it without touching the node; a failing readiness check counts as not ready', async () => {
    const { client, calls } = scripted([[taint(KEY)]]);
    const guard = startStartupTaintGuard({
      ...base,
      client,
      notReady: () => Promise.reject(new Error('upstream down')),
      pollMs: 5,
    });
    await new Promise((r) => setTimeout(r, 20));
    guard.stop();
    expect(await guard.done).toBe('stopped');
    expect(calls).toEqual([]);
  });
});
