// `imdsgate explain` and the agent decide the same: one table of pods in the real kube-apiserver, each
// decided by the agent's Kubernetes identity (startKubeIdentity, base ARN discovered from AEMM's identity
// document) and by explain with the same flags and --upstream; the outcome, role ARN or typed reason must
// match, and match the table.
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run as explain } from '../../../src/commands/explain.js';
import { loadConfig } from '../../../src/config.js';
import { createUpstream } from '../../../src/imds/upstream.js';
import { startKubeIdentity, type KubeIdentity } from '../../../src/kube/identity.js';
import { createLogger } from '../../../src/logger.js';
import { createMetrics } from '../../../src/metrics.js';
import { startAemm, type Aemm } from '../../env/aemm.js';
import {
  createPod,
  deleteNamespace,
  ensureNamespace,
  envState,
  setServiceAccount,
  waitUntil,
} from './support.js';

const run = randomBytes(3).toString('hex');
const NODE = `parity-${run}`;
const OPEN = `parity-open-${run}`;
const STRICT = `parity-strict-${run}`;
const ACCOUNT = '123456789012'; // AEMM's identity document, configured below
const arn = (name: string) => `arn:aws:iam::${ACCOUNT}:role/${name}`;

interface Row {
  readonly ns: string;
  readonly name: string;
  readonly sa?: { name: string; role: string };
  readonly podRole?: string;
  /** 'allow <arn>' or 'deny <reason>'. */
  readonly want: string;
}
const ROWS: Row[] = [
  { ns: OPEN, name: 'irsa', sa: { name: 'irsa', role: arn('web') }, want: `allow ${arn('web')}` },
  { ns: OPEN, name: 'bare', podRole: 'web', want: `allow ${arn('web')}` }, // base ARN discovered
  { ns: OPEN, name: 'path', podRole: 'team/web', want: `allow ${arn('team/web')}` },
  { ns: OPEN, name: 'none', want: 'deny no_role' },
  { ns: OPEN, name: 'junk', podRole: 'not a role!', want: 'deny invalid_role' },
  { ns: OPEN, name: 'long', podRole: 'n'.repeat(65), want: 'deny invalid_role' },
  { ns: STRICT, name: 'allowed', podRole: 'web', want: `allow ${arn('web')}` },
  { ns: STRICT, name: 'forbidden', podRole: 'admin', want: 'deny namespace_forbids' },
  {
    ns: STRICT,
    name: 'sa-forbidden',
    sa: { name: 'adm', role: arn('admin') },
    want: 'deny namespace_forbids',
  },
];
const ip = (i: number) => `169.254.88.${10 + i}`;

let aemm: Aemm;
let identity: KubeIdentity;
const logger = createLogger('silent', new Writable({ write: (_c, _e, cb) => cb() }));
const flags = (kubeconfig: string) => [
  '--kubeconfig',
  kubeconfig,
  `--upstream=${aemm.url}`,
  '--namespace-restriction-format=glob',
];

beforeAll(async () => {
  // AEMM's default account id has 10 digits; a real one has 12.
  aemm = await startAemm({
    config: {
      dynamic: {
        values: {
          'instance-identity-document': {
            accountId: ACCOUNT,
            region: 'us-east-1',
            instanceId: 'i-1234567890abcdef0',
            availabilityZone: 'us-east-1a',
            instanceType: 't3.medium',
            imageId: 'ami-0123456789abcdef0',
            privateIp: '10.0.0.10',
            architecture: 'x86_64',
            version: '2017-09-30',
            pendingTime: '2026-01-01T00:00:00Z',
            devpayProductCodes: null,
            marketplaceProductCodes: null,
            billingProducts: null,
            kernelId: null,
            ramdiskId: null,
          },
        },
      },
    },
  });
  await ensureNamespace(OPEN);
  await ensureNamespace(STRICT, { 'iam.amazonaws.com/allowed-roles': JSON.stringify(['web']) });
  for (const [i, r] of ROWS.entries()) {
    if (r.sa !== undefined)
      await setServiceAccount(r.ns, r.sa.name, { 'eks.amazonaws.com/role-arn': r.sa.role });
    await createPod({
      namespace: r.ns,
      name: r.name,
      nodeName: NODE,
      ...(r.sa !== undefined ? { serviceAccount: r.sa.name } : {}),
      annotations: r.podRole !== undefined ? { 'iam.amazonaws.com/role': r.podRole } : {},
      ips: [ip(i)],
    });
  }
  const kubeconfig = envState().kube.adminKubeconfig;
  const cfg = loadConfig([...flags(kubeconfig), '--node-name', NODE], { IMDSGATE_MANAGE_RULES: 'false' });
  const metrics = createMetrics(undefined, { defaults: false });
  const upstream = createUpstream({ url: aemm.url, timeoutMs: 800, clock: Date.now, metrics, logger });
  identity = await startKubeIdentity(cfg, { logger, metrics, clock: Date.now, upstream });
  await identity.synced;
});
afterAll(async () => {
  identity?.stop();
  await aemm?.stop();
  await Promise.all([OPEN, STRICT].map(deleteNamespace));
});

describe('explain and the agent share one decision', () => {
  it.each(ROWS.map((r, i) => [`${r.ns.split('-')[1]}/${r.name}`, r, i] as const))('%s', async (_n, r, i) => {
    const found = await waitUntil(async () => {
      const l = await identity.podLookup.byIp(ip(i));
      return l.kind === 'found' ? l.pod : undefined;
    }, 10_000);
    const d = await identity.roleResolver.resolve(found);
    const agent = d.allow ? `allow ${d.roleArn}` : `deny ${d.reason}`;

    let text = '';
    const out = { write: (s: string) => (text += s) };
    const code = await explain(
      ['--namespace', r.ns, '--pod', r.name, ...flags(envState().kube.adminKubeconfig)],
      out,
      out,
    );
    const line = /^decision: (ALLOW (\S+)|DENY (\w+))/m.exec(text);
    const explained = line?.[2] !== undefined ? `allow ${line[2]}` : `deny ${line?.[3]}`;

    expect(agent, JSON.stringify(d)).toBe(r.want);
    expect(explained, text).toBe(agent);
    expect(code).toBe(d.allow ? 0 : 1);
  });

  it('without --upstream or --base-role-arn, explain says the account is unknown (and denies bare names)', async () => {
    let text = '';
    const out = { write: (s: string) => (text += s) };
    const code = await explain(
      ['--namespace', OPEN, '--pod', 'bare', '--kubeconfig', envState().kube.adminKubeconfig],
      out,
      out,
    );
    expect(code).toBe(1);
    expect(text).toContain('note: account unknown: pass --base-role-arn');
  });
});
