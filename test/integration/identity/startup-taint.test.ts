// The node-boot guard against the real kube-apiserver (no kubelet runs here, so Node objects are
// created directly): the agent, with only get+patch on nodes (the chart's grant), removes its startup
// taint and nothing else; a concurrent change to the taints makes the apiserver refuse the patch's test
// op (422) and the agent retries from a fresh read; missing RBAC and a missing node fail clearly.
import { randomBytes } from 'node:crypto';
import type { V1Node, V1Taint } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeClientFor } from '../../../src/kube/client.js';
import type { KubeClient } from '../../../src/kube/rest.js';
import { removeStartupTaint, startStartupTaintGuard } from '../../../src/kube/startup-taint.js';
import { createLogger } from '../../../src/logger.js';
import { AGENT_RULES, agentKubeconfig, envState } from './support.js';

const run = randomBytes(3).toString('hex');
const KEY = 'imdsgate.io/agent-not-ready';
const NODE_RULES = [...AGENT_RULES, { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'patch'] }];
const logs: string[] = [];
const logger = createLogger('debug', { write: (s: string) => logs.push(s) });

let admin: KubeClient;
let agent: KubeClient;
const nodes: string[] = [];

async function createNode(name: string, taints: V1Taint[]): Promise<void> {
  nodes.push(name);
  await admin.request('POST', '/api/v1/nodes', { body: { metadata: { name }, spec: { taints } } });
}
const taintsOf = async (name: string) =>
  ((await admin.request<V1Node>('GET', `/api/v1/nodes/${name}`)).spec?.taints ?? []).map(
    (t) => `${t.key}:${t.effect}`,
  );

beforeAll(async () => {
  admin = kubeClientFor(envState().kube.adminKubeconfig);
  agent = kubeClientFor(await agentKubeconfig('imdsgate-agent-taint', NODE_RULES));
});
afterAll(async () => {
  for (const n of nodes) await admin.request('DELETE', `/api/v1/nodes/${n}`).catch(() => undefined);
  await admin.close();
  await agent.close();
});

describe('removeStartupTaint on the real API server', () => {
  it('removes the startup taint (every effect) and keeps the others; then it is a no-op', async () => {
    const name = `taint-a-${run}`;
    await createNode(name, [
      { key: KEY, value: 'true', effect: 'NoSchedule' },
      { key: 'other.example.com/keep', effect: 'NoSchedule' },
      { key: KEY, value: 'true', effect: 'NoExecute' },
    ]);
    expect(await removeStartupTaint({ client: agent, nodeName: name, key: KEY, logger })).toBe('removed');
    const left = await taintsOf(name);
    expect(left).toContain('other.example.com/keep:NoSchedule');
    expect(left.filter((t) => t.startsWith(KEY))).toEqual([]);
    expect(await removeStartupTaint({ client: agent, nodeName: name, key: KEY, logger })).toBe('absent');
  });

  it('a taint added between its read and its patch fails the test op (422); it retries and keeps it', async () => {
    const name = `taint-b-${run}`;
    await createNode(name, [{ key: KEY, value: 'true', effect: 'NoSchedule' }]);
    let raced = false;
    // Between the agent's GET and PATCH, another writer puts a taint in front of ours.
    const racing: KubeClient = {
      ...agent,
      request: async <T>(method: string, path: string, o?: object) => {
        if (method === 'PATCH' && !raced) {
          raced = true;
          await admin.request('PATCH', path, {
            body: [
              {
                op: 'add',
                path: '/spec/taints/0',
                value: { key: 'racer.example.com/x', effect: 'NoSchedule' },
              },
            ],
            contentType: 'application/json-patch+json',
          });
        }
        return agent.request<T>(method, path, o);
      },
    };
    logs.length = 0;
    expect(
      await removeStartupTaint({ client: racing, nodeName: name, key: KEY, logger, retryDelayMs: 10 }),
    ).toBe('removed');
    expect(logs.join()).toMatch(/HTTP 422.*taints changed meanwhile/);
    const left = await taintsOf(name);
    expect(left).toContain('racer.example.com/x:NoSchedule');
    expect(left.filter((t) => t.startsWith(KEY))).toEqual([]);
  });

  it('without patch on nodes the apiserver refuses (403) and the taint stays', async () => {
    const name = `taint-c-${run}`;
    await createNode(name, [{ key: KEY, value: 'true', effect: 'NoSchedule' }]);
    const readOnly = kubeClientFor(
      await agentKubeconfig('imdsgate-agent-taint-ro', [
        { apiGroups: [''], resources: ['nodes'], verbs: ['get'] },
      ]),
    );
    try {
      await expect(
        removeStartupTaint({ client: readOnly, nodeName: name, key: KEY, logger }),
      ).rejects.toMatchObject({
        code: 403,
        message: expect.stringContaining('cannot patch resource "nodes"') as string,
      });
    } finally {
      await readOnly.close();
    }
    expect(await taintsOf(name)).toContain(`${KEY}:NoSchedule`);
  });

  it('an unknown node name is a 404, not a silent success', async () => {
    await expect(
      removeStartupTaint({ client: agent, nodeName: `absent-${run}`, key: KEY, logger }),
    ).rejects.toMatchObject({ code: 404 });
  });

  it('the guard removes it once the agent reports ready', async () => {
    const name = `taint-d-${run}`;
    await createNode(name, [{ key: KEY, value: 'true', effect: 'NoSchedule' }]);
    let notReady = ['identity not synced'];
    const guard = startStartupTaintGuard({
      client: agent,
      nodeName: name,
      key: KEY,
      logger,
      notReady: async () => notReady,
      pollMs: 20,
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(await taintsOf(name)).toContain(`${KEY}:NoSchedule`);
    notReady = [];
    expect(await guard.done).toBe('removed');
    expect((await taintsOf(name)).filter((t) => t.startsWith(KEY))).toEqual([]);
  });
});
