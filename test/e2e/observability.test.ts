// What operators see is true of a real agent: the built agent in a node namespace with real rules, the
// real kube-apiserver, AEMM and moto (the sandbox). After a representative session (a token, credentials,
// a denial, a forwarded path) every series the Grafana dashboard and the PrometheusRule alerts query has
// a sample on /metrics. Then the interception self-check: a pod interface the rules do not match appears
// on the node (its pod reaches the real metadata service), and the agent says so in /readyz,
// imdsgate_ready, imdsgate_interception_ok and a Node Event, and recovers when it goes away.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coreApi } from '../env/kube.js';
import { ROOT } from './sandbox/cli.js';
import { createNetns, deleteNetns, netnsName } from './sandbox/netns.js';
import { createSandbox, curlIn, type Sandbox, type SandboxPod } from './sandbox/sandbox.js';
import { METADATA_IP, POD_GATEWAY } from './sandbox/topology.js';

const CREDS = '/latest/meta-data/iam/security-credentials/';
const TTL = ['-X', 'PUT', '-H', 'x-aws-ec2-metadata-token-ttl-seconds: 60'];

/** Every imdsgate_* name in the PromQL of the dashboard's panels and variables and of the alert rules. */
function queriedSeries(): Set<string> {
  const names = new Set<string>();
  const add = (expr: string) => {
    for (const m of expr.matchAll(/\bimdsgate_[a-z0-9_]+/g)) names.add(m[0]);
  };
  const dash = JSON.parse(readFileSync(join(ROOT, 'charts/imdsgate/dashboards/imdsgate.json'), 'utf8')) as {
    panels: { targets?: { expr: string }[] }[];
    templating: { list: { definition?: string; query?: unknown }[] };
  };
  for (const p of dash.panels) for (const t of p.targets ?? []) add(t.expr);
  for (const v of dash.templating.list) add(`${v.definition ?? ''} ${JSON.stringify(v.query ?? '')}`);
  const alerts = readFileSync(join(ROOT, 'charts/imdsgate/templates/_alerts.tpl'), 'utf8');
  for (const line of alerts.split('\n')) if (/^\s*expr:/.test(line)) add(line);
  return names;
}

/** Sample lines per series name (`name{...} value` or `name value`), comments skipped. */
function samples(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (m !== null) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
  }
  return counts;
}

let sb: Sandbox;
let allowed: SandboxPod;
let denied: SandboxPod;
let readyz: () => Promise<{ status: number; body: string }>;

beforeAll(async () => {
  sb = await createSandbox({
    backend: 'nft',
    identity: 'kube',
    pods: [
      { name: 'shop', namespace: 'obs-a', role: 'obs-app' },
      { name: 'sneaky', namespace: 'obs-b', role: 'obs-app', roleVia: 'pod-annotation' },
    ],
    allowedRoles: { 'obs-a': ['obs-app'], 'obs-b': ['other'] },
    agentArgs: ['--reconcile-interval-ms=500'],
  });
  [allowed, denied] = sb.pods as [SandboxPod, SandboxPod];
  await sb.startAgent();
  readyz = () => curlIn(sb.topology.node, 'http://127.0.0.1:9181/readyz');
});
afterAll(async () => {
  await sb?.destroy();
});

describe('every series the dashboard and the alerts query has a sample', () => {
  it('after a session with a token, credentials, a denial and a forwarded path', async () => {
    const token = await sb.curl(allowed, '/latest/api/token', TTL);
    expect(token.status).toBe(200);
    const auth = ['-H', `x-aws-ec2-metadata-token: ${token.body}`];
    expect(await sb.curl(allowed, CREDS, auth)).toMatchObject({ status: 200, body: 'obs-app' });
    expect((await sb.curl(allowed, `${CREDS}obs-app`, auth)).status).toBe(200);
    expect((await sb.curl(denied, CREDS)).status).toBe(404);
    expect((await sb.curl(allowed, '/latest/meta-data/instance-id', auth)).status).toBe(200);

    const wanted = queriedSeries();
    expect(wanted.size).toBeGreaterThan(20);
    expect([...wanted]).toEqual(expect.arrayContaining(['imdsgate_build_info', 'imdsgate_ready']));
    const have = samples(await sb.metrics());
    const missing = [...wanted].filter((n) => (have.get(n) ?? 0) === 0);
    expect(missing, 'queried by the dashboard or an alert, but no sample on /metrics').toEqual([]);
  });

  it('imdsgate_ready and build_info say what is true', async () => {
    const m = await sb.metrics();
    expect(m).toMatch(/^imdsgate_ready 1$/m);
    expect(m).toMatch(/^imdsgate_interception_ok\{reason=""\} 1$/m);
    expect(m).toMatch(
      new RegExp(`^imdsgate_build_info\\{version="[^"]+",node_version="${process.versions.node}"`, 'm'),
    );
  });
});

describe('interception self-check', () => {
  let rogue: string | undefined;
  afterAll(async () => {
    if (rogue !== undefined) await deleteNetns(rogue);
  });

  it('a pod interface --interfaces=veth+ does not match: not ready, gauge 0, a Node Event; ready again once gone', async () => {
    // A Cilium-style pod interface (lxc*) on the node, wired as the sandbox wires its pods.
    rogue = await createNetns(netnsName('obsrogue'));
    const ip = (ns: string, ...a: string[]) => execa('ip', ['-n', ns, ...a]);
    const node = sb.topology.node;
    const addr = '169.254.10.99';
    await ip(node, 'link', 'add', 'lxcrogue', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', rogue);
    await ip(node, 'addr', 'add', `${POD_GATEWAY}/32`, 'dev', 'lxcrogue');
    await ip(node, 'link', 'set', 'lxcrogue', 'up');
    await ip(node, 'route', 'add', `${addr}/32`, 'dev', 'lxcrogue');
    await ip(rogue, 'addr', 'add', `${addr}/32`, 'dev', 'eth0');
    await ip(rogue, 'link', 'set', 'eth0', 'up');
    await ip(rogue, 'route', 'add', POD_GATEWAY, 'dev', 'eth0', 'scope', 'link');
    await ip(rogue, 'route', 'add', 'default', 'via', POD_GATEWAY, 'dev', 'eth0');

    // Why it matters: that pod is not intercepted and gets the node's role from the real service.
    const leak = await curlIn(rogue, `http://${METADATA_IP}${CREDS}`);
    expect(leak.status).toBe(200);
    expect(leak.body).not.toBe('obs-app');

    const deadline = Date.now() + 10_000;
    let r = await readyz();
    while (r.status === 200 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 200));
      r = await readyz();
    }
    expect(r.status).toBe(503);
    expect(r.body).toContain('interception self-check: unmatched_pod_interface');
    expect(r.body).toContain('lxcrogue');
    const m = await sb.metrics();
    expect(m).toMatch(/^imdsgate_ready 0$/m);
    expect(m).toMatch(/^imdsgate_interception_ok\{reason="unmatched_pod_interface"\} 0$/m);
    expect(sb.agent()!.log()).toContain('interception self-check failed');

    const events = async (reason: string) =>
      (
        await coreApi().listNamespacedEvent({
          namespace: 'default',
          fieldSelector: `involvedObject.name=${sb.nodeName},reason=${reason}`,
        })
      ).items;
    let broken = await events('IMDSGateInterceptionBroken');
    for (let i = 0; i < 25 && broken.length === 0; i++) {
      await new Promise((res) => setTimeout(res, 200));
      broken = await events('IMDSGateInterceptionBroken');
    }
    expect(broken).toHaveLength(1);
    expect(broken[0]).toMatchObject({ type: 'Warning', involvedObject: { kind: 'Node', name: sb.nodeName } });
    expect(broken[0]!.message).toContain('lxcrogue');

    await deleteNetns(rogue); // takes the veth pair with it
    rogue = undefined;
    const back = Date.now() + 10_000;
    while ((await readyz()).status !== 200 && Date.now() < back)
      await new Promise((res) => setTimeout(res, 200));
    expect(await readyz()).toMatchObject({ status: 200, body: 'ready\n' });
    expect(await sb.metrics()).toMatch(/^imdsgate_interception_ok\{reason=""\} 1$/m);
    let ok = await events('IMDSGateInterceptionOk');
    for (let i = 0; i < 25 && ok.length === 0; i++) {
      await new Promise((res) => setTimeout(res, 200));
      ok = await events('IMDSGateInterceptionOk');
    }
    expect(ok).toHaveLength(1);
    expect(ok[0]!.type).toBe('Normal');
  });
});
