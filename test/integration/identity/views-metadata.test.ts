// The namespace and service-account views against the real kube-apiserver, listed and watched as
// PartialObjectMetadata (issue 14 §2): the API server sends metadata only, the views keep only the
// annotations the role decision reads, a change arrives through the metadata-only watch, and a view
// that has not heard from the API server within the staleness limit stops counting as ready.
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { fromKubeconfigFile } from '../../../src/kube/kubeconfig.js';
import { createKubeClient, type KubeClient, type WatchEvent } from '../../../src/kube/rest.js';
import {
  METADATA_ONLY,
  startNamespaceView,
  startServiceAccountView,
  type AnnotationView,
} from '../../../src/kube/views.js';
import { createLogger } from '../../../src/logger.js';
import { envState } from './support.js';

const st = envState();
const real = createKubeClient(fromKubeconfigFile(st.kube.adminKubeconfig));
const logger = createLogger('error', { write: () => undefined });
const ns = `vm-${randomBytes(3).toString('hex')}`;
const ROLE = 'arn:aws:iam::123456789012:role/vm-app';
const views: AnnotationView[] = [];
afterAll(async () => {
  for (const v of views) v.stop();
  await real.request('DELETE', `/api/v1/namespaces/${ns}`).catch(() => undefined);
  await real.close();
});

type Raw = { kind?: string; apiVersion?: string; spec?: unknown; secrets?: unknown; metadata?: object };
/** The real client, recording the Accept headers sent and every object received. */
function spy() {
  const accepts: string[] = [];
  const received: Raw[] = [];
  const client: KubeClient = {
    ...real,
    list: async (p, q, o) => {
      accepts.push(o?.accept ?? 'application/json');
      // Records each item as it arrives, before the view's own keep() strips it.
      const keep = (item: unknown) => (received.push(item as Raw), o?.keep ? o.keep(item) : item);
      return real.list(p, q, { ...o, keep }) as never;
    },
    watch: (p, q, onEvent, o) => {
      accepts.push(o?.accept ?? 'application/json');
      return real.watch<Raw>(p, q, (e) => (received.push(e.object), onEvent(e as WatchEvent<never>)), o);
    },
  };
  return { client, accepts, received };
}

const until = async (what: string, f: () => boolean) => {
  for (let i = 0; i < 200 && !f(); i++) await new Promise((r) => setTimeout(r, 50));
  expect(f(), what).toBe(true);
};

describe('metadata-only namespace and service-account views', () => {
  it('receive PartialObjectMetadata, keep only what the decision reads, and follow changes', async () => {
    await real.request('POST', '/api/v1/namespaces', {
      body: {
        metadata: {
          name: ns,
          labels: { team: 'a' },
          annotations: {
            'iam.amazonaws.com/allowed-roles': '["vm-*"]',
            'kubectl.kubernetes.io/last-applied-configuration': 'x'.repeat(2000),
          },
        },
      },
    });
    const sa = (name: string, annotations: Record<string, string>) =>
      real.request('POST', `/api/v1/namespaces/${ns}/serviceaccounts`, {
        body: { metadata: { name, annotations }, secrets: [{ name: `${name}-token` }] },
      });
    await sa('app', { 'eks.amazonaws.com/role-arn': ROLE, 'example.com/owner': 'team-a' });
    await sa('plain', { 'example.com/owner': 'team-a' });

    const s = spy();
    const clock = () => Date.now();
    const nsView = startNamespaceView(s.client, logger, { clock, maxStalenessSeconds: 60 });
    const saView = startServiceAccountView(s.client, logger, { clock, maxStalenessSeconds: 60 });
    views.push(nsView, saView);
    await Promise.all([nsView.synced, saView.synced]);
    expect(nsView.isReady() && saView.isReady()).toBe(true);

    expect(nsView.get(ns)?.annotations).toEqual({ 'iam.amazonaws.com/allowed-roles': '["vm-*"]' });
    expect(saView.get(ns, 'app')?.annotations).toEqual({ 'eks.amazonaws.com/role-arn': ROLE });
    expect(saView.get(ns, 'plain')).toBeUndefined();

    const changed: string[] = [];
    saView.onChange((n, name) => changed.push(`${n}/${name ?? ''}`));
    await real.request('PATCH', `/api/v1/namespaces/${ns}/serviceaccounts/plain`, {
      body: { metadata: { annotations: { 'eks.amazonaws.com/role-arn': `${ROLE}-2` } } },
      contentType: 'application/merge-patch+json',
    });
    await until('watch delivered the annotation', () => saView.get(ns, 'plain') !== undefined);
    expect(saView.get(ns, 'plain')?.annotations).toEqual({ 'eks.amazonaws.com/role-arn': `${ROLE}-2` });
    expect(changed).toContain(`${ns}/plain`);

    // What came over the wire: metadata only, never a service account's secrets or a namespace's spec.
    expect(s.accepts).toContain(METADATA_ONLY.list);
    expect(s.accepts).toContain(METADATA_ONLY.watch);
    const ours = s.received.filter((o) => JSON.stringify(o.metadata ?? {}).includes(ns));
    expect(ours.length).toBeGreaterThanOrEqual(3);
    for (const o of ours) {
      expect(o.kind).toBe('PartialObjectMetadata');
      expect(o.apiVersion).toBe('meta.k8s.io/v1');
      expect(o.spec).toBeUndefined();
      expect(o.secrets).toBeUndefined();
    }
  });

  it('a view not heard from within the staleness limit is not ready (identity paths fail closed)', async () => {
    let now = Date.now();
    const v = startNamespaceView(real, logger, { clock: () => now, maxStalenessSeconds: 30 });
    views.push(v);
    await v.synced;
    expect(v.isReady()).toBe(true);
    now += 31_000;
    expect(v.isReady()).toBe(false);
    // Hearing from the API server again (an event here) makes it fresh again.
    await real.request('PATCH', `/api/v1/namespaces/${ns}`, {
      body: { metadata: { labels: { poke: String(Date.now()) } } },
      contentType: 'application/merge-patch+json',
    });
    await until('fresh after an event', () => v.isReady());
  });
});
