// Helpers for the chart tests: the real helm binary, rendering to objects, and raw Kubernetes API calls
// (status and message of a refusal are what the RBAC and admission-policy tests assert on).
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { execa } from 'execa';
import { parseAllDocuments } from 'yaml';
import { testEnv } from '../../env/index.js';

export const CHART = fileURLToPath(new URL('../../../charts/imdsgate', import.meta.url));
export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
/** helm template has no cluster: render for the version the test API server runs. */
export const KUBE_VERSION = '1.34.0';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [k: string]: unknown;
}

export async function helm(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await execa(testEnv().bins.helm, args, {
    reject: false,
    env: { HELM_CACHE_HOME: '/tmp/imdsgate-helm-cache' },
  });
  return { code: r.exitCode ?? 1, stdout: r.stdout, stderr: r.stderr };
}

export interface RenderOptions {
  files?: string[];
  set?: string[];
  release?: string;
  namespace?: string;
  showOnly?: string;
}

export function templateArgs(o: RenderOptions = {}): string[] {
  return [
    'template',
    o.release ?? 'r',
    CHART,
    '--namespace',
    o.namespace ?? 'imdsgate-system',
    '--kube-version',
    KUBE_VERSION,
    ...(o.files ?? []).flatMap((f) => ['-f', f]),
    ...(o.set ?? []).flatMap((s) => ['--set', s]),
    ...(o.showOnly ? ['--show-only', o.showOnly] : []),
  ];
}

/** helm template → the rendered objects; throws with helm's message when rendering fails. */
export async function render(o: RenderOptions = {}): Promise<KubeObject[]> {
  const r = await helm(templateArgs(o));
  if (r.code !== 0) throw new Error(r.stderr);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJSON() as KubeObject | null)
    .filter((d): d is KubeObject => d !== null);
}

export const find = (objs: KubeObject[], kind: string): KubeObject => {
  const o = objs.find((x) => x.kind === kind);
  if (o === undefined) throw new Error(`no ${kind} rendered`);
  return o;
};

export function adminKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(testEnv().kube.adminKubeconfig);
  return kc;
}

/** A KubeConfig that authenticates with a bearer token against the test API server. */
export function tokenKubeConfig(token: string, user = 'sa'): KubeConfig {
  const env = testEnv();
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'testenv', server: env.kube.server, caData: readFileSync(caFile(), 'base64') }],
    users: [{ name: user, token }],
    contexts: [{ name: 'testenv', cluster: 'testenv', user }],
    currentContext: 'testenv',
  });
  return kc;
}

function caFile(): string {
  const kube = testEnv().kube as { caFile?: string };
  if (kube.caFile) return kube.caFile;
  const admin = new KubeConfig();
  admin.loadFromFile(testEnv().kube.adminKubeconfig);
  const file = admin.getCurrentCluster()?.caFile;
  if (!file) throw new Error('test API server CA file not found');
  return file;
}

export interface KubeResponse {
  status: number;
  body: { message?: string; [k: string]: unknown };
}

/** One raw API call: method, path (with query), JSON body and content type. Never throws on a status. */
export async function kube(
  kc: KubeConfig,
  method: string,
  path: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<KubeResponse> {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('kubeconfig has no server');
  const url = new URL(path, server);
  const opts: https.RequestOptions = { method, headers: { accept: 'application/json' } };
  await kc.applyToHTTPSOptions(opts);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  if (payload !== undefined) opts.headers = { ...opts.headers, 'content-type': contentType };
  return new Promise((resolve, reject) => {
    const req = https.request(url, opts, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: parseBody(text) });
      });
    });
    req.setTimeout(15_000, () => req.destroy(new Error(`${method} ${path}: timeout`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** A JSON body, or the first event of a watch stream (one JSON object per line). */
function parseBody(text: string): KubeResponse['body'] {
  for (const candidate of [text, text.split('\n')[0] ?? '']) {
    try {
      return candidate === '' ? {} : (JSON.parse(candidate) as KubeResponse['body']);
    } catch {
      // next candidate
    }
  }
  return { message: text };
}

/** API path of an object's collection (the kinds the chart renders, plus what the tests create). */
export function collectionPath(o: Pick<KubeObject, 'apiVersion' | 'kind'>, namespace?: string): string {
  const plural: Record<string, string> = {
    ServiceAccount: 'serviceaccounts',
    Service: 'services',
    ConfigMap: 'configmaps',
    Pod: 'pods',
    Namespace: 'namespaces',
    Node: 'nodes',
    DaemonSet: 'daemonsets',
    ClusterRole: 'clusterroles',
    ClusterRoleBinding: 'clusterrolebindings',
    Role: 'roles',
    RoleBinding: 'rolebindings',
    ValidatingAdmissionPolicy: 'validatingadmissionpolicies',
    ValidatingAdmissionPolicyBinding: 'validatingadmissionpolicybindings',
    ServiceMonitor: 'servicemonitors',
    PodMonitor: 'podmonitors',
    PrometheusRule: 'prometheusrules',
    CustomResourceDefinition: 'customresourcedefinitions',
  };
  const p = plural[o.kind];
  if (p === undefined) throw new Error(`unknown kind ${o.kind}`);
  const base = o.apiVersion.includes('/') ? `/apis/${o.apiVersion}` : `/api/${o.apiVersion}`;
  return namespace ? `${base}/namespaces/${namespace}/${p}` : `${base}/${p}`;
}

/** Creates an object, or leaves it when it exists already (409). */
export async function ensure(kc: KubeConfig, o: KubeObject): Promise<void> {
  const r = await kube(kc, 'POST', collectionPath(o, o.metadata.namespace), o);
  if (r.status !== 201 && r.status !== 409)
    throw new Error(`create ${o.kind}/${o.metadata.name}: ${r.status} ${r.body.message}`);
}

/** A service-account token from TokenRequest, optionally bound to a pod (then it carries the pod's node). */
export async function saToken(
  admin: KubeConfig,
  namespace: string,
  sa: string,
  boundPod?: { name: string; uid: string },
): Promise<string> {
  const spec: Record<string, unknown> = { expirationSeconds: 3600 };
  if (boundPod)
    spec.boundObjectRef = { kind: 'Pod', apiVersion: 'v1', name: boundPod.name, uid: boundPod.uid };
  const r = await kube(admin, 'POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${sa}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec,
  });
  if (r.status !== 201) throw new Error(`TokenRequest ${namespace}/${sa}: ${r.status} ${r.body.message}`);
  return (r.body.status as { token: string }).token;
}

/**
 * The prometheus-operator kinds the chart may render, as minimal CRDs (the API server only checks the
 * envelope of these; their own schema is prometheus-operator's business). Their real CRDs are not
 * reachable from here (GitHub), so the dry-run proves apiVersion, kind and metadata only.
 */
export function monitoringCrds(): KubeObject[] {
  return [
    ['ServiceMonitor', 'servicemonitors'],
    ['PodMonitor', 'podmonitors'],
    ['PrometheusRule', 'prometheusrules'],
  ].map(([kind, plural]) => ({
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.monitoring.coreos.com` },
    spec: {
      group: 'monitoring.coreos.com',
      scope: 'Namespaced',
      names: { kind, plural, singular: kind!.toLowerCase(), listKind: `${kind}List` },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: { spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
            },
          },
        },
      ],
    },
  }));
}

/** Polls fn until it returns a value other than undefined, or fails after timeoutMs. */
export async function eventually<T>(
  fn: () => Promise<T | undefined>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * The chart as helm install should see it. A kube-apiserver built without version ldflags reports
 * v0.0.0-master, which fails the chart's kubeVersion (>=1.30) gate; then install a copy without the gate
 * (render.test.ts covers the gate itself). With a properly stamped server the chart is used as is.
 */
export async function installableChart(admin: KubeConfig): Promise<string> {
  const v = (await kube(admin, 'GET', '/version')).body as { gitVersion?: string };
  if (!/^v0\.0\.0/.test(v.gitVersion ?? '')) return CHART;
  // Under the run directory, so `testenv:down` removes it with everything else.
  const dir = mkdtempSync(join(testEnv().runDir, 'chart-'));
  cpSync(CHART, dir, { recursive: true });
  const chartYaml = join(dir, 'Chart.yaml');
  writeFileSync(chartYaml, readFileSync(chartYaml, 'utf8').replace(/^kubeVersion:.*$/m, ''));
  return dir;
}

/** One plain HTTP request from a chosen loopback source address (the "pod"). */
export function podRequest(
  url: string,
  localAddress: string,
  opts: { method?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: opts.method ?? 'GET', headers: opts.headers ?? {}, localAddress, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error(`${url}: timeout`)));
    req.on('error', reject);
    req.end();
  });
}
