// The agent doing its whole job with nothing but the chart's ServiceAccount: helm installs the chart into
// the real kube-apiserver, the agent (serve(), in this process, on loopback, rules off) authenticates with
// a token of that ServiceAccount, watches its node's pods, reads namespace and service-account
// annotations, assumes roles at moto and sends a denial Event. Any permission the chart lacks fails here.
// Its real /metrics output then passes `promtool check metrics`.
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { execa } from 'execa';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { createLogger } from '../../../src/logger.js';
import { createMetrics } from '../../../src/metrics.js';
import { serve, type Served } from '../../../src/serve.js';
import { startAemm, type Aemm } from '../../env/aemm.js';
import { testEnv } from '../../env/index.js';
import {
  coreApi,
  createNamespace,
  createNode,
  createPod,
  createServiceAccount,
  deleteNamespace,
  kubeconfigForServiceAccount,
} from '../../env/kube.js';
import { adminKubeConfig, eventually, helm, installableChart, podRequest } from './helpers.js';

const run = randomBytes(3).toString('hex');
const RELEASE = `a${run}`;
const NODE = `chart-node-${run}`;
const ACCOUNT = '123456789012';
const ROLE = 'chart-app';
const TTL = 'x-aws-ec2-metadata-token-ttl-seconds';
const TOKEN = 'x-aws-ec2-metadata-token';
const POD = { app: '127.0.0.2', forbidden: '127.0.0.3', roleless: '127.0.0.4' };

let agentNs: string;
let apps: string;
let aemm: Aemm;
let served: Served;
const logs: Record<string, unknown>[] = [];

const listing = async (ip: string) => {
  const base = served.addresses.listen;
  const t = await podRequest(`${base}/latest/api/token`, ip, { method: 'PUT', headers: { [TTL]: '60' } });
  expect(t.status).toBe(200);
  return {
    token: t.text,
    ...(await podRequest(`${base}/latest/meta-data/iam/security-credentials/`, ip, {
      headers: { [TOKEN]: t.text },
    })),
  };
};

beforeAll(async () => {
  const env = testEnv();
  agentNs = await createNamespace({}, `imdsgate-agent-${run}`);
  const r = await helm([
    'install',
    RELEASE,
    await installableChart(adminKubeConfig()),
    '--namespace',
    agentNs,
    '--kubeconfig',
    env.kube.adminKubeconfig,
  ]);
  if (r.code !== 0) throw new Error(r.stderr);
  apps = await createNamespace({ 'iam.amazonaws.com/allowed-roles': JSON.stringify([`${ROLE}*`]) });
  await createServiceAccount(apps, 'app', {
    'eks.amazonaws.com/role-arn': `arn:aws:iam::${ACCOUNT}:role/${ROLE}`,
  });
  await createServiceAccount(apps, 'admin', {
    'eks.amazonaws.com/role-arn': `arn:aws:iam::${ACCOUNT}:role/admin`,
  });
  await createNode(NODE);
  await createPod({ namespace: apps, name: 'app', nodeName: NODE, serviceAccount: 'app', podIP: POD.app });
  await createPod({
    namespace: apps,
    name: 'greedy',
    nodeName: NODE,
    serviceAccount: 'admin',
    podIP: POD.forbidden,
  });
  await createPod({ namespace: apps, name: 'plain', nodeName: NODE, podIP: POD.roleless });

  aemm = await startAemm();
  const kubeconfig = await kubeconfigForServiceAccount(agentNs, `${RELEASE}-imdsgate`);
  const cfg = loadConfig(
    [
      '--listen=127.0.0.1:0',
      '--metrics-listen=127.0.0.1:0',
      `--upstream=${aemm.url}`,
      `--kubeconfig=${kubeconfig}`,
      `--node-name=${NODE}`,
      `--sts-endpoint=${env.sts.endpoint}`,
      '--region=us-east-1',
      `--base-role-arn=arn:aws:iam::${ACCOUNT}:role/`,
    ],
    { IMDSGATE_MANAGE_RULES: 'false' },
  );
  const logger = createLogger(
    'debug',
    new Writable({
      write(c: Buffer, _e, cb) {
        logs.push(JSON.parse(c.toString()) as Record<string, unknown>);
        cb();
      },
    }),
  );
  served = await serve(cfg, { logger, metrics: createMetrics(new Registry()) });
  await eventually(
    async () => ((await fetch(`${served.addresses.metrics}/readyz`)).status === 200 ? true : undefined),
    20_000,
    'agent ready',
  );
});

afterAll(async () => {
  await served?.close();
  await aemm?.stop();
  await helm(['uninstall', RELEASE, '--namespace', agentNs, '--kubeconfig', testEnv().kube.adminKubeconfig]);
  for (const ns of [apps, agentNs]) if (ns) await deleteNamespace(ns);
  await coreApi()
    .deleteNode({ name: NODE })
    .catch(() => undefined);
});

describe('the agent with the chart ServiceAccount', () => {
  it('serves a pod exactly its own role, with credentials from STS', async () => {
    const l = await listing(POD.app);
    expect(l).toMatchObject({ status: 200, text: ROLE });
    const creds = await podRequest(
      `${served.addresses.listen}/latest/meta-data/iam/security-credentials/${ROLE}`,
      POD.app,
      {
        headers: { [TOKEN]: l.token },
      },
    );
    expect(creds.status).toBe(200);
    const body = JSON.parse(creds.text) as { Code: string; AccessKeyId: string; Token: string };
    expect(body.Code).toBe('Success');
    expect(body.AccessKeyId).toMatch(/^ASIA/);
  });

  it('denies a role the namespace does not allow, and reports it as an Event on the pod', async () => {
    expect((await listing(POD.forbidden)).status).toBe(404);
    const event = await eventually(
      async () => {
        const list = await coreApi().listNamespacedEvent({
          namespace: apps,
          fieldSelector: 'involvedObject.name=greedy',
        });
        return list.items.find(
          (e) => (e.message ?? '').includes('namespace_forbids') || e.reason === 'IMDSGateDenied',
        );
      },
      10_000,
      'the denial Event',
    );
    expect(event.type).toBe('Warning');
  });

  it('gives a pod without a role nothing (never the node role)', async () => {
    const l = await listing(POD.roleless);
    expect(l.status).toBe(404);
    expect(l.text).not.toContain('baskinc-role'); // AEMM's node role
  });

  it('never hit a permission error against the API server', () => {
    // (not a bare /403/: ports and timestamps contain it)
    const denied = logs.filter((l) =>
      /forbidden|"(code|statusCode|status)":\s*403\b/i.test(JSON.stringify(l)),
    );
    expect(denied).toEqual([]);
  });

  it('its /metrics output passes promtool check metrics', async () => {
    const text = await (await fetch(`${served.addresses.metrics}/metrics`)).text();
    expect(text).toContain('imdsgate_decisions_total{');
    const promtool = testEnv().bins.promtool;
    expect(promtool, 'promtool (apt-get install prometheus)').not.toBe('');
    const r = await execa(promtool, ['check', 'metrics'], { input: text, reject: false });
    const problems = `${r.stdout}\n${r.stderr}`.split('\n').filter(Boolean);
    // prom-client's default Node.js gauges carry a _total suffix (prom-client's naming, not ours): known,
    // listed by name so that any other complaint, and every complaint about imdsgate_*, fails.
    const PROM_CLIENT_DEFAULTS = [
      'nodejs_active_handles_total',
      'nodejs_active_requests_total',
      'nodejs_active_resources_total',
    ];
    const ours = problems.filter((p) => !PROM_CLIENT_DEFAULTS.some((m) => p.startsWith(`${m} `)));
    expect(ours).toEqual([]);
  });
});
