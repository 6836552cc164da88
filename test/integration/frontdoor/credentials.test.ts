// docs/protocol.md §13 (conformance checklist) #21-#38 and #58: credential paths served by the real agent with real STS
// (moto) credentials, signed by the node credentials the agent reads from amazon-ec2-metadata-mock. Two
// pods: 127.0.0.1 has a role, 127.0.0.2 has none (the source address is the pod's identity).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ROLE,
  ROLE_ARN,
  TOKEN,
  call,
  recordingUpstream,
  startAemm,
  startAgent,
  token,
  type Aemm,
  type Agent,
} from './harness.js';

let aemm: Aemm;
let rec: Awaited<ReturnType<typeof recordingUpstream>>;
let agent: Agent;
const NOROLE = '127.0.0.2';
const LIST = '/latest/meta-data/iam/security-credentials/';
const TS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
const get = (p: string, o: { headers?: Record<string, string>; localAddress?: string } = {}) =>
  call(`${agent.url}${p}`, o);
const iamSeen = () => rec.seen.filter((r) => /iam\/security-credentials/i.test(r.url));

let coldMs = 0;
beforeAll(async () => {
  aemm = await startAemm();
  rec = await recordingUpstream(aemm.url);
  agent = await startAgent({
    upstream: rec.url,
    pods: [
      { ip: '127.0.0.1', name: 'app-0', roleArn: ROLE_ARN },
      { ip: NOROLE, name: 'norole-0' },
    ],
    namespaces: {},
  });
  const t0 = performance.now();
  const first = await get(`${LIST}${ROLE}`);
  coldMs = performance.now() - t0;
  if (first.status !== 200)
    throw new Error(`cold credential request answered ${first.status}: ${first.text}`);
});
afterAll(async () => {
  await agent?.stop();
  await rec?.stop();
  await aemm?.stop();
});

describe('credential interception', () => {
  it('#21 #22 the listing is exactly the role name, with or without the trailing slash', async () => {
    for (const p of [LIST, LIST.slice(0, -1)]) {
      const r = await get(p);
      expect(r.status).toBe(200);
      expect(r.text).toBe(ROLE);
      expect(r.text).toMatch(/^[\w+=,.@-]{1,64}$/);
    }
  });

  it('#23-#27 #37 #58 serves moto STS credentials in IMDS JSON with > 25 min left', async () => {
    const r = await get(`${LIST}${ROLE}`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/plain');
    const doc = JSON.parse(r.text) as Record<string, unknown>;
    expect(Object.keys(doc).sort()).toEqual([
      'AccessKeyId',
      'Code',
      'Expiration',
      'LastUpdated',
      'SecretAccessKey',
      'Token',
      'Type',
    ]);
    for (const v of Object.values(doc)) expect(typeof v).toBe('string');
    expect(doc.Code).toBe('Success');
    expect(doc.Type).toBe('AWS-HMAC');
    expect(doc.AccessKeyId).toMatch(/^ASIA/);
    expect(doc.AccessKeyId).not.toBe('12345678901'); // AEMM's node key
    expect(doc.Expiration).toMatch(TS);
    expect(doc.LastUpdated).toMatch(TS);
    const now = Date.now();
    expect(Date.parse(doc.Expiration as string) - now).toBeGreaterThanOrEqual(1500_000);
    expect(Date.parse(doc.LastUpdated as string)).toBeLessThanOrEqual(now);
    expect(Date.parse(doc.LastUpdated as string)).toBeLessThanOrEqual(Date.parse(doc.Expiration as string));
  });

  it('#28 warm: p99 first-byte well under 500 ms; #29 cold: under 1000 ms', async () => {
    const times: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      await get(`${LIST}${ROLE}`);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    expect(times[Math.floor(times.length * 0.99)]!).toBeLessThan(500);
    expect(coldMs).toBeLessThan(1000);
  });

  it('#30 #31 #32 #33 other roles, every version prefix, -extended and other spellings: never forwarded', async () => {
    const before = iamSeen().length;
    expect((await get(`${LIST}baskinc-role`)).status).toBe(404); // the node's role name
    expect((await get('/2012-01-12/meta-data/iam/security-credentials/')).text).toBe(ROLE);
    expect((await get(`/1.0/meta-data/iam/security-credentials/${ROLE}`)).status).toBe(200);
    expect((await get('/2007-01-19/meta-data/iam/security-credentials')).text).toBe(ROLE);
    expect((await get('/latest/meta-data/iam/security-credentials-extended/')).text).toBe(ROLE);
    const ext = JSON.parse((await get(`/latest/meta-data/iam/security-credentials-extended/${ROLE}`)).text);
    expect(ext.AccountId).toBe('123456789012');
    for (const p of [
      '/latest/meta-data/IAM/security-credentials/',
      '/latest/meta-data/iam/Security-Credentials/',
      '/latest/meta-data/iam/security-credentials-EXTENDED/',
      '/LATEST/meta-data/iam/security-credentials/',
      '/latest/meta-data/iam//security-credentials/',
      '/latest/meta-data/iam/./security-credentials/',
      '/latest/meta-data/x/../iam/security-credentials/',
      '/latest/meta-data/iam/security-credentials%2Fbaskinc-role',
      '/latest/meta-data/iam/security-credentials/baskinc-role/',
      '/latest/meta-data/iam/security-credentials/baskinc-role;x',
      '/latest/meta-data/iam/security-credentials/baskinc-role?x',
      '/latest/meta-data/iam/security-credentials/baskinc-role%00',
    ]) {
      const r = await get(p);
      expect([400, 404], p).toContain(r.status);
      expect(r.text, p).not.toContain('12345678901');
    }
    expect(iamSeen().length).toBe(before);
    // Only the agent's own node-credential reads ever touched those paths upstream, with its own session.
    for (const r of iamSeen())
      expect([
        '/latest/meta-data/iam/security-credentials/',
        '/latest/meta-data/iam/security-credentials/baskinc-role',
      ]).toContain(r.url);
  });

  it('#34 iam/info names a profile after the pod role, never the node profile', async () => {
    const r = await get('/latest/meta-data/iam/info');
    expect(r.status).toBe(200);
    const doc = JSON.parse(r.text);
    expect(doc).toMatchObject({
      Code: 'Success',
      InstanceProfileArn: `arn:aws:iam::123456789012:instance-profile/${ROLE}`,
    });
    expect(doc.InstanceProfileId).toMatch(/^AIPA/);
    const node = JSON.parse((await call(`${aemm.url}/latest/meta-data/iam/info`)).text);
    expect(doc.InstanceProfileArn).not.toBe(node.InstanceProfileArn);
    expect(doc.InstanceProfileId).not.toBe(node.InstanceProfileId);
    expect((await get('/latest/meta-data/iam/info', { localAddress: NOROLE })).status).toBe(404);
  });

  it('#35 the node identity-role credentials are concealed', async () => {
    for (const p of [
      '/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance',
      '/latest/meta-data/identity-credentials/ec2/info',
    ]) {
      expect((await get(p)).status).toBe(404);
    }
  });

  it('#36 no token is fine under IMDSv1 allow; a bad token is 401; namespace deny makes no token 401', async () => {
    expect((await get(LIST)).status).toBe(200);
    expect((await get(LIST, { headers: { [TOKEN]: 'nope' } })).status).toBe(401);
    agent.writePods(
      [
        { ip: '127.0.0.1', name: 'app-0', roleArn: ROLE_ARN },
        { ip: NOROLE, name: 'norole-0' },
      ],
      { 'team-a': { imdsv1: 'deny' } },
    );
    await waitFor(async () => (await get(LIST)).status === 401);
    const t = await token(agent.url);
    expect((await get(`${LIST}${ROLE}`, { headers: { [TOKEN]: t } })).status).toBe(200);
    agent.writePods([
      { ip: '127.0.0.1', name: 'app-0', roleArn: ROLE_ARN },
      { ip: NOROLE, name: 'norole-0' },
    ]);
    await waitFor(async () => (await get(LIST)).status === 200);
  });

  it('#38 a pod without a role, and an unknown address, get 404 and never the node role', async () => {
    for (const p of [LIST, `${LIST}baskinc-role`, `${LIST}${ROLE}`]) {
      expect((await get(p, { localAddress: NOROLE })).status).toBe(404);
      expect((await get(p, { localAddress: '127.0.0.3' })).status).toBe(404);
    }
  });

  it('a token minted for one pod is refused for another (binding)', async () => {
    const t = await token(agent.url);
    expect((await get(LIST, { headers: { [TOKEN]: t }, localAddress: NOROLE })).status).toBe(401);
  });

  it('writes one decision line per credential request, with no secret in any line', async () => {
    const r = JSON.parse((await get(`${LIST}${ROLE}`)).text);
    const lines = agent.logs.filter((l) => l.msg === 'decision');
    expect(lines.at(-1)).toMatchObject({
      namespace: 'team-a',
      pod: 'app-0',
      serviceAccount: 'app',
      role: ROLE_ARN,
      outcome: 'allow',
    });
    const all = JSON.stringify(agent.logs);
    expect(all).not.toContain(r.SecretAccessKey);
    expect(all).not.toContain(r.Token);
  });

  it('exposes decisions, cache events and upstream latency on /metrics', async () => {
    const m = (await call(`${agent.metricsUrl}/metrics`)).text;
    expect(m).toMatch(
      /imdsgate_decisions_total\{outcome="allow",reason="identity-file",pod_namespace="team-a"\} \d+/,
    );
    expect(m).toMatch(
      /imdsgate_decisions_total\{outcome="deny",reason="no_role",pod_namespace="team-a"\} \d+/,
    );
    expect(m).toMatch(/imdsgate_credential_cache_events_total\{event="hit"\} \d+/);
    expect(m).toMatch(/imdsgate_upstream_request_duration_seconds_count\{status_class="2xx"\} \d+/);
    expect(m).toMatch(/imdsgate_sts_requests_total\{api="AssumeRole",outcome="success"\} 1/);
  });
});

async function waitFor(cond: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('condition not met in time');
}
