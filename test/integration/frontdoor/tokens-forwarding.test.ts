// docs/protocol.md §13 (conformance checklist) #1-#20 (docs/protocol.md): the real agent in front of real
// amazon-ec2-metadata-mock (optional-token mode), through a recording proxy that sees every upstream request.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  TOKEN,
  TTL,
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
let agentUserData: Agent;
const BINARY = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x0d, 0x0a, 0x80]);

beforeAll(async () => {
  aemm = await startAemm();
  rec = await recordingUpstream(aemm.url, (r) => {
    if (r.url === '/latest/meta-data/placement/availability-zone-id' && r.headers['x-test-429'])
      return undefined;
    if (r.url === '/latest/meta-data/services/partition') return { status: 429, body: 'Too Many Requests' };
    if (r.url === '/latest/meta-data/services/domain' && r.method === 'GET')
      return { status: 200, body: BINARY, headers: { 'content-type': 'application/octet-stream' } };
    return undefined;
  });
  agent = await startAgent({ upstream: rec.url, args: ['--region=us-east-1'] });
  agentUserData = await startAgent({
    upstream: aemm.url,
    args: ['--region=us-east-1', '--allow-path=user-data'],
  });
});
afterAll(async () => {
  await agent?.stop();
  await agentUserData?.stop();
  await rec?.stop();
  await aemm?.stop();
});

const put = (headers: Record<string, string>, path = '/latest/api/token') =>
  call(`${agent.url}${path}`, { method: 'PUT', headers });

describe('token endpoint', () => {
  it('#1 #2 mints a token and echoes the TTL granted', async () => {
    for (const ttl of ['21600', '300']) {
      const r = await put({ [TTL]: ttl });
      expect(r.status).toBe(200);
      expect(r.text.length).toBeGreaterThan(0);
      expect(r.headers[TTL]).toBe(ttl);
    }
  });

  it.each([
    ['#3 missing TTL', {}],
    ['#4 TTL 21601', { [TTL]: '21601' }],
    ['#5 TTL 0', { [TTL]: '0' }],
    ['#6 TTL abc', { [TTL]: 'abc' }],
  ])('%s → 400', async (_n, headers) => {
    expect((await put(headers)).status).toBe(400);
  });

  it('#7 a 1 s token is refused with 401 after a second', async () => {
    const t = await token(agent.url, '1');
    expect((await call(`${agent.url}/latest/meta-data/`, { headers: { [TOKEN]: t } })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await call(`${agent.url}/latest/meta-data/`, { headers: { [TOKEN]: t } })).status).toBe(401);
  });

  it('#8 versioned token path → 403; #9 PUT with X-Forwarded-For → 403 with an empty body', async () => {
    expect((await put({ [TTL]: '60' }, '/2021-03-23/api/token')).status).toBe(403);
    const r = await put({ [TTL]: '60', 'X-Forwarded-For': '10.1.2.3' });
    expect(r.status).toBe(403);
    expect(r.body.length).toBe(0);
    expect(r.headers['server']).toBe('EC2ws');
  });

  it('#10 nothing sent upstream carries X-Forwarded-For, Forwarded or Via, and pod tokens never go upstream', async () => {
    const t = await token(agent.url);
    await call(`${agent.url}/latest/meta-data/instance-id`, {
      headers: { 'X-Forwarded-For': '1.2.3.4', Forwarded: 'for=1.2.3.4', Via: '1.1 x' },
    });
    await call(`${agent.url}/latest/meta-data/instance-id`, { headers: { [TOKEN]: t, Via: '1.1 x' } });
    expect(rec.seen.length).toBeGreaterThan(0);
    for (const r of rec.seen) {
      expect(r.headers['x-forwarded-for']).toBeUndefined();
      expect(r.headers.forwarded).toBeUndefined();
      expect(r.headers.via).toBeUndefined();
      expect(r.headers[TOKEN]).not.toBe(t);
    }
  });

  it('#11 #12 a token works on forwarded and credential paths; an unknown one is 401 on both', async () => {
    const t = await token(agent.url);
    expect(
      (await call(`${agent.url}/latest/meta-data/instance-id`, { headers: { [TOKEN]: t } })).status,
    ).toBe(200);
    expect(
      (await call(`${agent.url}/latest/meta-data/iam/security-credentials/`, { headers: { [TOKEN]: t } }))
        .status,
    ).toBe(200);
    for (const p of ['/latest/meta-data/instance-id', '/latest/meta-data/iam/security-credentials/']) {
      expect(
        (await call(`${agent.url}${p}`, { headers: { [TOKEN]: 'AQAEAFakeTokenFromSomewhereElse==' } }))
          .status,
      ).toBe(401);
    }
  });
});

describe('generic forwarding', () => {
  it('#13 relays the meta-data listing with text/plain', async () => {
    const [via, direct] = await Promise.all([
      call(`${agent.url}/latest/meta-data/`),
      call(`${aemm.url}/latest/meta-data/`),
    ]);
    expect(via.status).toBe(200);
    // The listing is AEMM's, without what the agent conceals (src/imds/listing.ts); this pod has a role.
    const concealed = /^(elastic-inference|identity-credentials|public-keys|tags)\/$/;
    expect(via.text).toBe(
      direct.text
        .split('\n')
        .filter((l) => !concealed.test(l))
        .join('\n'),
    );
    expect(direct.text).toMatch(/^public-keys\/$/m);
    expect(via.text).toMatch(/^iam\/$/m);
    expect(via.text).toMatch(/^instance-id$/m);
    expect(via.text).toMatch(/^placement\/$/m);
    expect(via.headers['content-type']).toBe('text/plain');
  });

  it('#14 HEAD answers as GET without a body', async () => {
    const head = await call(`${agent.url}/latest/meta-data/instance-id`, { method: 'HEAD' });
    const get = await call(`${agent.url}/latest/meta-data/instance-id`);
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    expect(head.headers['content-length']).toBe(String(get.body.length));
  });

  it('#15 an upstream 404 on an allowed path is relayed unchanged; unknown paths are concealed with 404', async () => {
    const p = '/latest/meta-data/placement/nope';
    const [via, direct] = await Promise.all([call(`${agent.url}${p}`), call(`${aemm.url}${p}`)]);
    expect(via.status).toBe(404);
    expect(via.body.equals(direct.body)).toBe(true);
    expect(via.headers['content-type']).toBe(direct.headers['content-type']);
    const concealed = await call(`${agent.url}/latest/meta-data/nope`);
    expect(concealed.status).toBe(404);
    expect(concealed.text).toContain('404 - Not Found');
  });

  it('#17 an upstream 429 is relayed as 429, once', async () => {
    const before = rec.seen.filter((r) => r.url === '/latest/meta-data/services/partition').length;
    expect((await call(`${agent.url}/latest/meta-data/services/partition`)).status).toBe(429);
    expect(rec.seen.filter((r) => r.url === '/latest/meta-data/services/partition').length).toBe(before + 1);
  });

  it('#18 the identity document, signature and pkcs7 are relayed byte for byte', async () => {
    const doc = await call(`${agent.url}/latest/dynamic/instance-identity/document`);
    expect(JSON.parse(doc.text)).toMatchObject({
      accountId: expect.any(String),
      instanceId: expect.any(String),
      region: expect.any(String),
    });
    for (const p of ['document', 'signature', 'pkcs7']) {
      const [via, direct] = await Promise.all([
        call(`${agent.url}/latest/dynamic/instance-identity/${p}`),
        call(`${aemm.url}/latest/dynamic/instance-identity/${p}`),
      ]);
      expect(via.status, p).toBe(direct.status);
      expect(via.body.equals(direct.body), p).toBe(true);
    }
  });

  it('#19 bodies are binary-safe; user-data is concealed by default and relayed when allowed', async () => {
    const bin = await call(`${agent.url}/latest/meta-data/services/domain`);
    expect(bin.body.equals(BINARY)).toBe(true);
    expect(bin.headers['content-type']).toBe('application/octet-stream');
    expect((await call(`${agent.url}/latest/user-data`)).status).toBe(404);
    const [via, direct] = await Promise.all([
      call(`${agentUserData.url}/latest/user-data`),
      call(`${aemm.url}/latest/user-data`),
    ]);
    expect(via.status).toBe(200);
    expect(via.body.equals(direct.body)).toBe(true);
    expect(via.headers['content-type']).toBe('application/octet-stream');
  });

  it('#20 other methods are answered 405 by the agent and never forwarded', async () => {
    const before = rec.seen.length;
    for (const method of ['POST', 'DELETE', 'PATCH', 'OPTIONS']) {
      expect((await call(`${agent.url}/latest/meta-data/instance-id`, { method })).status, method).toBe(405);
    }
    expect((await call(`${agent.url}/latest/api/token`)).status).toBe(405);
    expect(rec.seen.length).toBe(before);
  });
});

describe('upstream in IMDSv2-only mode (#16)', () => {
  let v2: Aemm;
  let allow: Agent;
  let deny: Agent;
  beforeAll(async () => {
    v2 = await startAemm({ imdsv2Only: true });
    allow = await startAgent({ upstream: v2.url, args: ['--region=us-east-1'] });
    deny = await startAgent({ upstream: v2.url, args: ['--region=us-east-1', '--imdsv1=deny'] });
  });
  afterAll(async () => {
    await allow?.stop();
    await deny?.stop();
    await v2?.stop();
  });

  it('the agent keeps its own session, so IMDSv1 is the agent policy: 200 with allow, 401 with deny', async () => {
    expect((await call(`${v2.url}/latest/meta-data/instance-id`)).status).toBe(401); // upstream requires tokens
    const a = await call(`${allow.url}/latest/meta-data/instance-id`);
    expect(a.status).toBe(200);
    expect(a.text).toBe(
      (await call(`${v2.url}/latest/meta-data/instance-id`, { headers: { [TOKEN]: await token(v2.url) } }))
        .text,
    );
    expect((await call(`${deny.url}/latest/meta-data/instance-id`)).status).toBe(401);
    const t = await token(deny.url);
    expect((await call(`${deny.url}/latest/meta-data/instance-id`, { headers: { [TOKEN]: t } })).status).toBe(
      200,
    );
  });

  it('is ready: /readyz reports the upstream session works', async () => {
    expect((await call(`${allow.metricsUrl}/readyz`)).status).toBe(200);
  });
});
