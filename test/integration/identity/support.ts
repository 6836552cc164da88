// Helpers of the identity integration tests: the real kube-apiserver and moto that `npm run testenv:up`
// started (state file), least-privilege agent credentials, pods with kubelet-like status, a private
// kube-apiserver on the shared etcd that the restart test may kill, and a TCP relay to fake an STS outage.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { stateFile } from '../../env/index.js';
import { join } from 'node:path';
import {
  CoreV1Api,
  KubeConfig,
  RbacAuthorizationV1Api,
  type V1PolicyRule,
  type V1Pod,
} from '@kubernetes/client-node';

export interface EnvState {
  kube: { server: string; adminKubeconfig: string; caFile: string };
  sts: { endpoint: string };
  etcd: { endpoint: string };
  pkiDir: string;
  bins: { kubeApiserver: string };
}

/** ENV's state file, read raw: the identity tests also need etcd and the PKI for a private apiserver. */
export function envState(): EnvState {
  const file = stateFile();
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as EnvState;
  } catch {
    throw new Error(`test env is not up (no ${file}): run npm run testenv:up`);
  }
}

/**
 * The RBAC the chart must grant the agent (docs/roles.md). serviceaccounts/token only in web-identity
 * mode; events: create only (Events are never patched).
 */
export const AGENT_RULES: V1PolicyRule[] = [
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [''], resources: ['namespaces', 'serviceaccounts'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create'] },
];
export const WEB_IDENTITY_RULES: V1PolicyRule[] = [
  ...AGENT_RULES,
  { apiGroups: [''], resources: ['serviceaccounts/token'], verbs: ['create'] },
];

export function adminKc(server?: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(envState().kube.adminKubeconfig);
  if (server !== undefined) {
    const c = kc.getCurrentCluster();
    kc.clusters = kc.clusters.map((x) => (x.name === c?.name ? { ...x, server } : x));
  }
  return kc;
}

const core = (kc = adminKc()) => kc.makeApiClient(CoreV1Api);

async function ignoreConflict<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if ((err as { code?: number }).code === 409) return undefined;
    throw err;
  }
}

export async function ensureNamespace(name: string, annotations: Record<string, string> = {}): Promise<void> {
  const api = core();
  const existing = await api.readNamespace({ name }).catch(() => undefined);
  if (existing === undefined) {
    await api.createNamespace({ body: { metadata: { name, annotations } } });
    // No controller-manager runs in the env: create the "default" service account it would.
    await ignoreConflict(
      api.createNamespacedServiceAccount({ namespace: name, body: { metadata: { name: 'default' } } }),
    );
    return;
  }
  existing.metadata = { ...existing.metadata, annotations };
  await api.replaceNamespace({ name, body: existing });
}

export async function setServiceAccount(
  namespace: string,
  name: string,
  annotations: Record<string, string> = {},
) {
  const api = core();
  const existing = await api.readNamespacedServiceAccount({ name, namespace }).catch(() => undefined);
  if (existing === undefined) {
    await api.createNamespacedServiceAccount({ namespace, body: { metadata: { name, annotations } } });
    return;
  }
  existing.metadata = { ...existing.metadata, annotations };
  await api.replaceNamespacedServiceAccount({ name, namespace, body: existing });
}

export interface PodSpec {
  namespace: string;
  name: string;
  nodeName: string;
  serviceAccount?: string;
  annotations?: Record<string, string>;
  ips?: string[];
  phase?: string;
  hostNetwork?: boolean;
}

/** Creates the pod, then sets status as a kubelet would (podIP, podIPs, phase via the status subresource). */
export async function createPod(s: PodSpec, kc = adminKc()): Promise<V1Pod> {
  const api = core(kc);
  const pod = await api.createNamespacedPod({
    namespace: s.namespace,
    body: {
      metadata: { name: s.name, annotations: s.annotations ?? {} },
      spec: {
        nodeName: s.nodeName,
        serviceAccountName: s.serviceAccount ?? 'default',
        automountServiceAccountToken: false,
        hostNetwork: s.hostNetwork ?? false,
        containers: [{ name: 'c', image: 'example.invalid/none' }],
      },
    },
  });
  if (s.ips === undefined) return pod;
  return setPodStatus(s.namespace, s.name, s.ips, s.phase ?? 'Running', kc);
}

export async function setPodStatus(
  namespace: string,
  name: string,
  ips: string[],
  phase: string,
  kc = adminKc(),
) {
  const api = core(kc);
  const pod = await api.readNamespacedPod({ name, namespace });
  pod.status = {
    ...pod.status,
    phase,
    ...(ips.length > 0 ? { podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) } : {}),
  };
  return api.replaceNamespacedPodStatus({ name, namespace, body: pod });
}

export async function deletePod(namespace: string, name: string, kc = adminKc()): Promise<void> {
  await core(kc)
    .deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 })
    .catch((err: { code?: number }) => {
      if (err.code !== 404) throw err;
    });
}

export async function deleteNamespace(name: string): Promise<void> {
  await core()
    .deleteNamespace({ name })
    .catch(() => undefined);
}

/** A service account of the agent bound to exactly `rules`, and a kubeconfig using its token. */
export async function agentKubeconfig(id: string, rules: V1PolicyRule[], server?: string): Promise<string> {
  const kc = adminKc();
  const api = core(kc);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const ns = 'imdsgate-system';
  await ignoreConflict(api.createNamespace({ body: { metadata: { name: ns } } }));
  await ignoreConflict(
    api.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: id } } }),
  );
  await rbac.deleteClusterRole({ name: id }).catch(() => undefined);
  await rbac.createClusterRole({ body: { metadata: { name: id }, rules } });
  await ignoreConflict(
    rbac.createClusterRoleBinding({
      body: {
        metadata: { name: id },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: id },
        subjects: [{ kind: 'ServiceAccount', name: id, namespace: ns }],
      },
    }),
  );
  const tr = await api.createNamespacedServiceAccountToken({
    name: id,
    namespace: ns,
    body: { spec: { audiences: ['https://kubernetes.default.svc.cluster.local'], expirationSeconds: 3600 } },
  });
  const st = envState();
  const file = join(mkdtempSync(join(tmpdir(), 'imdsgate-agent-')), 'kubeconfig');
  writeFileSync(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      `clusters: [{ name: c, cluster: { server: "${server ?? st.kube.server}", certificate-authority: "${st.kube.caFile}" } }]`,
      `users: [{ name: u, user: { token: "${tr.status?.token ?? ''}" } }]`,
      'contexts: [{ name: x, context: { cluster: c, user: u } }]',
      'current-context: x',
      '',
    ].join('\n'),
  );
  return file;
}

export async function waitUntil<T>(
  fn: () => T | Promise<T>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * A second kube-apiserver on the shared etcd (an HA pair, as in production), owned by this test: it
 * can be killed and restarted on the same port without disturbing anyone else's use of the env.
 */
export async function startPrivateApiserver(): Promise<{
  server: string;
  stop(): Promise<void>;
  restart(): Promise<void>;
}> {
  const st = envState();
  const port = await freePort();
  const pki = st.pkiDir;
  const args = [
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${port}`,
    `--etcd-servers=${st.etcd.endpoint}`,
    `--tls-cert-file=${pki}/apiserver.crt`,
    `--tls-private-key-file=${pki}/apiserver.key`,
    `--client-ca-file=${pki}/ca.crt`,
    '--authorization-mode=Node,RBAC',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${pki}/sa.pub`,
    `--service-account-signing-key-file=${pki}/sa.key`,
    '--api-audiences=https://kubernetes.default.svc.cluster.local,sts.amazonaws.com',
    '--service-cluster-ip-range=169.254.240.0/24',
    '--profiling=false',
    '--v=0',
  ];
  const server = `https://127.0.0.1:${port}`;
  let proc: ChildProcess | undefined;
  const start = async () => {
    proc = spawn(st.bins.kubeApiserver, args, { stdio: 'ignore' });
    const kc = adminKc(server);
    await waitUntil(
      async () =>
        await core(kc)
          .listNamespace({ limit: 1 })
          .then(
            () => true,
            () => false,
          ),
      60_000,
      'private kube-apiserver',
    );
  };
  const stop = async () => {
    const p = proc;
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    server,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
  };
}

/** A TCP relay in front of moto; `down()` refuses and cuts connections like an unreachable STS. */
export async function startRelay(
  target: string,
): Promise<{ url: string; down(): void; up(): void; close(): Promise<void> }> {
  const t = new URL(target);
  let open = true;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    if (!open) return client.destroy();
    const upstream = connect(Number(t.port), t.hostname);
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    down() {
      open = false;
      for (const s of sockets) s.destroy();
    },
    up() {
      open = true;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
