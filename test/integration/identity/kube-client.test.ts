// The agent's own Kubernetes client against the real kube-apiserver: every way a kubeconfig can carry
// the CA and credentials, in-cluster settings, token rotation, RBAC refusals and a real 410 on a watch.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { kubeClientFor } from '../../../src/kube/client.js';
import { fromCluster, parseKubeconfig } from '../../../src/kube/kubeconfig.js';
import { KubeApiError, createKubeClient, type KubeClient, type WatchEvent } from '../../../src/kube/rest.js';
import { AGENT_RULES, agentKubeconfig, envState } from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'imdsgate-kc-'));
const clients: KubeClient[] = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  rmSync(dir, { recursive: true, force: true });
});
const track = (c: KubeClient) => (clients.push(c), c);

const st = envState();
const pem = (f: string) => readFileSync(join(st.pkiDir, f)).toString('base64');
const kubeconfig = (cluster: object, user: object) =>
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server: st.kube.server, ...cluster } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'x',
  });
const clientOf = (cluster: object, user: object) =>
  track(createKubeClient(parseKubeconfig(kubeconfig(cluster, user), join(dir, 'kubeconfig'))));
const listNamespaces = (c: KubeClient) => c.list<{ metadata: { name: string } }>('/api/v1/namespaces');
const adminCert = { 'client-certificate-data': pem('admin.crt'), 'client-key-data': pem('admin.key') };
/** The token inside a kubeconfig agentKubeconfig wrote. */
const tokenOf = (file: string) => /token: "([^"]+)"/.exec(readFileSync(file, 'utf8'))?.[1] ?? '';

/** Compacts etcd up to its current revision through its JSON gateway, as the apiserver does every 5 min. */
async function compactEtcd(): Promise<void> {
  const post = async (path: string, body: object) => {
    const res = await fetch(`${st.etcd.endpoint}${path}`, { method: 'POST', body: JSON.stringify(body) });
    expect(res.status).toBe(200);
    return (await res.json()) as { header: { revision: string } };
  };
  const { header } = await post('/v3/kv/range', { key: 'AA==' });
  await post('/v3/kv/compaction', { revision: header.revision, physical: true });
}

describe('kube client on the real API server', () => {
  it('inline CA and client certificate (-data fields)', async () => {
    const r = await listNamespaces(clientOf({ 'certificate-authority-data': pem('ca.crt') }, adminCert));
    expect(r.items.map((n) => n.metadata.name)).toContain('default');
    expect(r.resourceVersion).toMatch(/^\d+$/);
  });

  it('insecure-skip-tls-verify works without a CA; without either the TLS handshake fails', async () => {
    expect(
      (await listNamespaces(clientOf({ 'insecure-skip-tls-verify': true }, adminCert))).items.length,
    ).toBeGreaterThan(0);
    await expect(listNamespaces(clientOf({}, adminCert))).rejects.toThrow(
      /GET \/api\/v1\/namespaces: .*(certificate|self.signed)/i,
    );
  });

  it('no credentials: 403 for system:anonymous, as a KubeApiError with the server message', async () => {
    const err = await listNamespaces(clientOf({ 'certificate-authority-data': pem('ca.crt') }, {})).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KubeApiError);
    expect(err).toMatchObject({ code: 403, reason: 'Forbidden' });
    expect((err as Error).message).toContain('system:anonymous');
  });

  it('a bad token is a 401; a tokenFile rotated under the running client is picked up on the next 401', async () => {
    const good = tokenOf(await agentKubeconfig('imdsgate-agent-kc', AGENT_RULES));
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'not-a-valid-token');
    const c = clientOf({ 'certificate-authority': join(st.pkiDir, 'ca.crt') }, { tokenFile });
    await expect(c.request('GET', '/api/v1/namespaces/default')).rejects.toMatchObject({ code: 401 });
    writeFileSync(tokenFile, good);
    const ns = await c.request<{ metadata: { name: string } }>('GET', '/api/v1/namespaces/default');
    expect(ns.metadata.name).toBe('default');
  });

  it('least privilege: the agent token may list pods but gets a 403 for secrets', async () => {
    const c = track(kubeClientFor(await agentKubeconfig('imdsgate-agent-kc', AGENT_RULES)));
    await c.list('/api/v1/pods', { fieldSelector: 'spec.nodeName=none' });
    await expect(c.list('/api/v1/secrets')).rejects.toMatchObject({
      code: 403,
      message: expect.stringContaining('cannot list resource "secrets"') as string,
    });
  });

  it('in-cluster settings: KUBERNETES_SERVICE_HOST/PORT with the mounted token and CA', async () => {
    const sa = mkdtempSync(join(dir, 'sa-'));
    writeFileSync(join(sa, 'token'), tokenOf(await agentKubeconfig('imdsgate-agent-kc', AGENT_RULES)));
    writeFileSync(join(sa, 'ca.crt'), readFileSync(join(st.pkiDir, 'ca.crt')));
    const u = new URL(st.kube.server);
    const c = track(
      createKubeClient(
        fromCluster({ KUBERNETES_SERVICE_HOST: u.hostname, KUBERNETES_SERVICE_PORT: u.port }, sa),
      ),
    );
    expect((await c.list('/api/v1/namespaces')).items.length).toBeGreaterThan(0);
  });

  it('a watch from a compacted resourceVersion gets the real 410 (ERROR event or HTTP status)', async () => {
    const c = clientOf({ 'certificate-authority-data': pem('ca.crt') }, adminCert);
    await compactEtcd();
    const got: WatchEvent<{ code?: number }>[] = [];
    const ctl = new AbortController();
    const result = await c
      .watch<{ code?: number }>(
        // test/env/up serves limitranges without the watch cache, so this watch reaches etcd.
        '/api/v1/limitranges',
        { resourceVersion: '1', timeoutSeconds: 5 },
        (e) => {
          got.push(e);
          if (e.type === 'ERROR') ctl.abort();
        },
        { signal: ctl.signal },
      )
      .then(
        () => 'ended',
        (e: unknown) => e,
      );
    const code =
      result instanceof KubeApiError ? result.code : got.find((e) => e.type === 'ERROR')?.object.code;
    expect(code).toBe(410);
  });

  it('a watch delivers real events for a new object, split into lines correctly', async () => {
    const c = clientOf({ 'certificate-authority-data': pem('ca.crt') }, adminCert);
    const { resourceVersion } = await listNamespaces(c);
    const name = `kc-${randomBytes(3).toString('hex')}`;
    const ctl = new AbortController();
    const seen: string[] = [];
    const watching = c.watch<{ metadata: { name: string } }>(
      '/api/v1/namespaces',
      { resourceVersion, fieldSelector: `metadata.name=${name}` },
      (e) => {
        seen.push(`${e.type}:${e.object.metadata.name}`);
        ctl.abort();
      },
      { signal: ctl.signal },
    );
    await c.request('POST', '/api/v1/namespaces', { body: { metadata: { name } } });
    await watching;
    expect(seen).toEqual([`ADDED:${name}`]);
    await c.request('DELETE', `/api/v1/namespaces/${name}`);
  });
});
