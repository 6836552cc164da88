import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ImdsError } from '../../../src/errors.js';
import { ROLE_ARN, T0, harness, pod, standardPods, type Harness } from './fakes.js';

let h: Harness;
const WEB = '10.0.0.1';
const BATCH = '10.0.0.2';
const CREDS = '/latest/meta-data/iam/security-credentials/';

beforeEach(() => {
  h = harness();
  standardPods(h);
});
afterEach(() => h.app.close());

const get = (url: string, ip = WEB, headers: Record<string, string> = {}) =>
  h.app.inject({ method: 'GET', url, remoteAddress: ip, headers });
const putToken = (
  ip = WEB,
  headers: Record<string, string> = { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' },
  url = '/latest/api/token',
) => h.app.inject({ method: 'PUT', url, remoteAddress: ip, headers });

describe('token endpoint (§13 #1-#9)', () => {
  it('mints a token with the TTL header echoed', async () => {
    const res = await putToken(WEB, { 'X-Aws-Ec2-Metadata-Token-Ttl-Seconds': '300' });
    expect(res.statusCode).toBe(200);
    expect(res.body.length).toBeGreaterThan(20);
    expect(res.headers['x-aws-ec2-metadata-token-ttl-seconds']).toBe('300');
    expect(res.headers.server).toBe('EC2ws');
    expect(h.upstreamCalls).toEqual([]);
    expect(await h.metrics.tokensMinted.get()).toMatchObject({ values: [{ value: 1 }] });
  });

  it.each([
    [{}],
    [{ 'x-aws-ec2-metadata-token-ttl-seconds': '21601' }],
    [{ 'x-aws-ec2-metadata-token-ttl-seconds': '0' }],
    [{ 'x-aws-ec2-metadata-token-ttl-seconds': 'abc' }],
  ])('answers 400 to a bad TTL %j', async (headers) => {
    const res = await putToken(WEB, headers);
    expect(res.statusCode).toBe(400);
    expect(res.body).toContain('400 - Bad Request');
  });

  it('answers 403 to a versioned token path and to a PUT with X-Forwarded-For (empty body)', async () => {
    expect(
      (await putToken(WEB, { 'x-aws-ec2-metadata-token-ttl-seconds': '60' }, '/2021-03-23/api/token'))
        .statusCode,
    ).toBe(403);
    const xff = await putToken(WEB, {
      'x-aws-ec2-metadata-token-ttl-seconds': '60',
      'x-forwarded-for': '1.2.3.4',
    });
    expect(xff.statusCode).toBe(403);
    expect(xff.body).toBe('');
    expect(xff.headers['content-type']).toBe('text/plain');
  });

  it('answers 405 to other methods on the token path and PUT elsewhere', async () => {
    expect((await get('/latest/api/token')).statusCode).toBe(405);
    const post = await h.app.inject({ method: 'POST', url: '/latest/api/token', remoteAddress: WEB });
    expect(post.statusCode).toBe(405);
    const put = await h.app.inject({ method: 'PUT', url: '/latest/meta-data/', remoteAddress: WEB });
    expect(put.statusCode).toBe(405);
    const del = await h.app.inject({ method: 'DELETE', url: '/latest/meta-data/', remoteAddress: WEB });
    expect(del.statusCode).toBe(405);
  });

  it('accepts a token until its TTL ends, then 401 on forwarded and credential paths (#7, #11, #12)', async () => {
    const token = (await putToken(WEB, { 'x-aws-ec2-metadata-token-ttl-seconds': '1' })).body;
    const t = { 'x-aws-ec2-metadata-token': token };
    expect((await get('/latest/meta-data/instance-id', WEB, t)).statusCode).toBe(200);
    expect((await get(CREDS, WEB, t)).statusCode).toBe(200);
    h.now.ms += 1000;
    expect((await get('/latest/meta-data/instance-id', WEB, t)).statusCode).toBe(401);
    expect((await get(CREDS, WEB, t)).statusCode).toBe(401);
    expect((await get(`${CREDS}app-role`, WEB, t)).statusCode).toBe(401);
  });

  it('refuses a token from another pod, a garbage token and a duplicated header with 401', async () => {
    const token = (await putToken(WEB)).body;
    expect((await get(CREDS, BATCH, { 'x-aws-ec2-metadata-token': token })).statusCode).toBe(401);
    expect((await get(CREDS, WEB, { 'x-aws-ec2-metadata-token': 'garbage' })).statusCode).toBe(401);
    expect((await get(CREDS, WEB, { 'x-aws-ec2-metadata-token': '' })).statusCode).toBe(401);
    const rejected = await h.metrics.tokenRejections.get();
    // Every reason's series exists from the start (at 0); these two counted.
    const counted = rejected.values.filter((v) => v.value > 0);
    expect(counted.map((v) => v.labels.reason).sort()).toEqual(['bad_signature', 'malformed']);
  });

  it('refuses a token once the IP belongs to a new pod (UID binding)', async () => {
    const token = (await putToken(WEB)).body;
    h.pods.set(WEB, { kind: 'found', pod: pod(WEB, 'web', { uid: 'uid-new' }) });
    expect((await get(CREDS, WEB, { 'x-aws-ec2-metadata-token': token })).statusCode).toBe(401);
  });

  it('accepts a token minted before its pod was known, once the pod at that IP is known', async () => {
    const NEW = '10.0.0.9';
    const token = (await putToken(NEW)).body; // the kubelet has not reported the pod's IP yet
    h.pods.set(NEW, { kind: 'found', pod: pod(NEW, 'web', { uid: 'uid-fresh' }) });
    const r = await get(CREDS, NEW, { 'x-aws-ec2-metadata-token': token });
    expect(r.statusCode).toBe(200);
    expect(r.body).toBe('app-role');
    // ...but never from another address
    expect((await get(CREDS, WEB, { 'x-aws-ec2-metadata-token': token })).statusCode).toBe(401);
  });

  it('answers 403 to a token-bearing GET with X-Forwarded-For, but serves token-less v1 GETs with it', async () => {
    const token = (await putToken(WEB)).body;
    const r = await get(CREDS, WEB, { 'x-aws-ec2-metadata-token': token, 'x-forwarded-for': '10.9.9.9' });
    expect(r.statusCode).toBe(403);
    const v1 = await get(CREDS, WEB, { 'x-forwarded-for': '10.0.0.2' });
    expect(v1.statusCode).toBe(200);
    expect(v1.body).toBe('app-role'); // the socket address decides, never the header
  });
});

describe('IMDSv1 policy (§13 #36)', () => {
  it('serves token-less requests when allowed and 401 when the namespace denies', async () => {
    expect((await get(CREDS)).statusCode).toBe(200);
    h.v1.set('team-a', 'deny');
    expect((await get(CREDS)).statusCode).toBe(401);
    expect((await get('/latest/meta-data/instance-id')).statusCode).toBe(401);
    const token = (await putToken()).body;
    expect((await get(CREDS, WEB, { 'x-aws-ec2-metadata-token': token })).statusCode).toBe(200);
  });

  it('applies --imdsv1=deny to unknown callers', async () => {
    await h.app.close();
    h = harness({ imdsv1: 'deny' });
    expect((await get('/latest/meta-data/instance-id', '10.9.9.9')).statusCode).toBe(401);
    const token = (await putToken('10.9.9.9')).body;
    expect(
      (await get('/latest/meta-data/instance-id', '10.9.9.9', { 'x-aws-ec2-metadata-token': token }))
        .statusCode,
    ).toBe(200);
  });
});

describe('credential paths (§13 #21-#38)', () => {
  it('lists exactly the role name, with and without the trailing slash, under any version', async () => {
    for (const p of [
      CREDS,
      CREDS.slice(0, -1),
      '/2012-01-12/meta-data/iam/security-credentials/',
      '/1.0/meta-data/iam/security-credentials',
    ]) {
      const res = await get(p);
      expect(res.statusCode, p).toBe(200);
      expect(res.body).toBe('app-role');
      expect(res.headers['content-type']).toBe('text/plain');
    }
    expect(h.upstreamCalls).toEqual([]);
  });

  it('serves the pod credentials in IMDS JSON', async () => {
    const res = await get(`${CREDS}app-role`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain');
    const doc = JSON.parse(res.body) as Record<string, string>;
    expect(doc).toEqual({
      Code: 'Success',
      LastUpdated: '2026-03-01T11:59:59Z',
      Type: 'AWS-HMAC',
      AccessKeyId: 'ASIAPODKEY',
      SecretAccessKey: 'pod-secret',
      Token: 'pod-session-token',
      Expiration: '2026-03-01T13:00:00Z',
    });
    expect(h.issued).toEqual([{ pod: expect.objectContaining({ name: 'web' }), roleArn: ROLE_ARN }]);
    expect(h.upstreamCalls).toEqual([]);
  });

  it('serves the extended variant with AccountId, and /1.0 role paths', async () => {
    const ext = await get('/latest/meta-data/iam/security-credentials-extended/');
    expect(ext.body).toBe('app-role');
    const doc = JSON.parse((await get('/latest/meta-data/iam/security-credentials-extended/app-role')).body);
    expect(doc.AccountId).toBe('123456789012');
    expect((await get('/1.0/meta-data/iam/security-credentials/app-role')).statusCode).toBe(200);
    expect(h.upstreamCalls).toEqual([]);
  });

  it('answers 404 for another role name, a deeper path and pods without a role or identity', async () => {
    expect((await get(`${CREDS}node-role`)).statusCode).toBe(404);
    expect((await get(`${CREDS}App-Role`)).statusCode).toBe(404);
    expect((await get(`${CREDS}app-role/x`)).statusCode).toBe(404);
    expect((await get(CREDS, BATCH)).statusCode).toBe(404);
    expect((await get(`${CREDS}app-role`, BATCH)).statusCode).toBe(404);
    expect((await get(CREDS, '10.9.9.9')).statusCode).toBe(404);
    h.pods.set('10.0.0.3', { kind: 'conflict' });
    expect((await get(CREDS, '10.0.0.3')).statusCode).toBe(404);
    expect(h.upstreamCalls).toEqual([]);
    expect(h.issued).toEqual([]);
    const d = await h.metrics.decisions.get();
    expect(d.values.map((v) => v.labels.reason).sort()).toEqual([
      'no_role',
      'pod_ip_conflict',
      'pod_unknown',
      'test',
    ]);
    expect((await h.metrics.podIpConflicts.get()).values[0]?.value).toBe(1);
  });

  it('answers 404 with a typed reason when the node says the sender is not the pod the view names', async () => {
    for (const [i, reason] of (
      ['sandbox_changed', 'address_quarantined', 'no_sandbox_signal'] as const
    ).entries()) {
      const ip = `10.0.0.${20 + i}`;
      h.pods.set(ip, { kind: 'unbound', reason });
      for (const path of [CREDS, `${CREDS}app-role`, '/latest/meta-data/iam/info']) {
        const res = await get(path, ip);
        expect(res.statusCode).toBe(404);
        expect(res.body).not.toMatch(/app-role|team|web/);
      }
    }
    expect(h.issued).toEqual([]);
    expect(h.upstreamCalls).toEqual([]);
    const d = await h.metrics.decisions.get();
    expect(
      d.values.filter((v) => v.labels.outcome === 'deny').map((v) => [v.labels.reason, v.value]),
    ).toEqual([
      ['sandbox_changed', 3],
      ['address_quarantined', 3],
      ['no_sandbox_signal', 3],
    ]);
  });

  it('refuses other spellings of credential paths and never forwards them (#33)', async () => {
    for (const p of [
      '/latest/meta-data/IAM/security-credentials/',
      '/latest/meta-data/iam/Security-Credentials/app-role',
      '/LATEST/meta-data/iam/security-credentials/',
    ]) {
      const res = await get(p);
      expect([400, 404], p).toContain(res.statusCode);
    }
    expect(h.upstreamCalls).toEqual([]);
  });

  it('answers 503 when the issuer fails or returns credentials with less than 25 minutes left (#26, #59)', async () => {
    h.setIssuer(async () => {
      throw new ImdsError('CREDENTIALS_UNAVAILABLE', 'sts said no');
    });
    const failed = await get(`${CREDS}app-role`);
    expect(failed.statusCode).toBe(503);
    expect(failed.body).not.toContain('sts said no');
    h.setIssuer(async () => ({
      accessKeyId: 'A',
      secretAccessKey: 'S',
      sessionToken: 'T',
      expiration: new Date(h.now.ms + 1499_000),
      lastUpdated: new Date(h.now.ms),
    }));
    expect((await get(`${CREDS}app-role`)).statusCode).toBe(503);
    h.setIssuer(async () => {
      throw new Error('bug');
    });
    expect((await get(`${CREDS}app-role`)).statusCode).toBe(500);
  });

  it('fails closed with a prompt IMDS-shaped 503 on every identity path while the pod view is not ready', async () => {
    h.ready.value = false;
    for (const p of [CREDS, `${CREDS}app-role`, '/latest/meta-data/iam/info', '/latest/meta-data/iam/']) {
      const res = await get(p);
      expect(res.statusCode, p).toBe(503);
      expect(res.body, p).not.toMatch(/ASIA|secret|app-role/i);
    }
    // No wait for the watch: the view that would answer is the one not to trust.
    expect(h.lookups).toEqual([]);
    expect(h.issued).toEqual([]);
    // Forwarding needs no identity and goes on; so do tokens.
    expect((await get('/latest/meta-data/instance-id')).statusCode).toBe(200);
    expect((await putToken()).statusCode).toBe(200);
    h.ready.value = true;
    expect((await get(`${CREDS}app-role`)).statusCode).toBe(200);
    expect(h.upstreamCalls).toEqual(['/latest/meta-data/instance-id']);
  });

  it('synthesizes iam/info and the iam listing for the pod role; 404 without one (#34)', async () => {
    const info = JSON.parse((await get('/latest/meta-data/iam/info')).body);
    expect(info.InstanceProfileArn).toBe('arn:aws:iam::123456789012:instance-profile/app-role');
    expect((await get('/latest/meta-data/iam/')).body).toBe('info\nsecurity-credentials/');
    expect((await get('/latest/meta-data/iam/info', BATCH)).statusCode).toBe(404);
    expect((await get('/latest/meta-data/iam/other')).statusCode).toBe(404);
    expect(h.upstreamCalls).toEqual([]);
  });

  it('logs one decision line without secrets', async () => {
    const token = (await putToken()).body;
    await get(`${CREDS}app-role`, WEB, { 'x-aws-ec2-metadata-token': token });
    const decisions = h.logs.filter((l) => l.msg === 'decision');
    expect(decisions).toHaveLength(1);
    expect(decisions[0]).toMatchObject({
      namespace: 'team-a',
      pod: 'web',
      serviceAccount: 'app',
      role: ROLE_ARN,
      path: `${CREDS}app-role`,
      outcome: 'allow',
      status: 200,
      latencyMs: expect.any(Number),
    });
    const all = JSON.stringify(h.logs);
    expect(all).not.toContain(token);
    expect(all).not.toContain('pod-secret');
    expect(all).not.toContain('pod-session-token');
  });

  // Decision fields are cached per pod for cheap log lines; the cache must follow every change, also
  // when the pod index hands out a fresh object per lookup (the Kubernetes index does).
  it('logs the current decision after the pod or its role changes', async () => {
    const decisions = () => h.logs.filter((l) => l.msg === 'decision');
    await get(`${CREDS}app-role`);
    await get(`${CREDS}app-role`);
    h.pods.set(WEB, { kind: 'found', pod: pod(WEB, 'web', { serviceAccount: 'other-sa' }) });
    await get(`${CREDS}app-role`);
    const other = 'arn:aws:iam::123456789012:role/other-role';
    h.roles.set('web', { allow: true, roleArn: other, roleName: 'other-role', source: 'test' });
    await get(`${CREDS}other-role`);
    h.roles.set('web', { allow: false, reason: 'no_role', detail: 'no role now' });
    await get(`${CREDS}other-role`);
    await get(`${CREDS}other-role`, '10.9.9.9');
    expect(decisions().map((l) => [l.serviceAccount, l.role, l.outcome, l.decisionReason, l.detail])).toEqual(
      [
        ['app', ROLE_ARN, 'allow', 'test', undefined],
        ['app', ROLE_ARN, 'allow', 'test', undefined],
        ['other-sa', ROLE_ARN, 'allow', 'test', undefined],
        ['other-sa', other, 'allow', 'test', undefined],
        ['other-sa', undefined, 'deny', 'no_role', 'no role now'],
        [undefined, undefined, 'deny', 'pod_unknown', 'no pod for the source address'],
      ],
    );
    expect(decisions().at(-1)).not.toHaveProperty('pod');
  });
});

describe('forwarding and concealment', () => {
  it('forwards allowed paths with status, body bytes and content type', async () => {
    const bytes = Buffer.from([0, 1, 2, 255, 254, 10]);
    h.setUpstream(async () => ({ status: 404, contentType: 'application/octet-stream', body: bytes }));
    const res = await get('/latest/meta-data/instance-id');
    expect(res.statusCode).toBe(404);
    expect(res.rawPayload.equals(bytes)).toBe(true);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    expect(h.upstreamCalls).toEqual(['/latest/meta-data/instance-id']);
  });

  it('relays 429 as is (#17)', async () => {
    h.setUpstream(async () => ({ status: 429, contentType: 'text/plain', body: Buffer.from('slow down') }));
    const res = await get('/latest/meta-data/instance-id');
    expect(res.statusCode).toBe(429);
    expect(h.upstreamCalls).toHaveLength(1);
  });

  it('HEAD goes upstream as GET and returns headers only (#14)', async () => {
    const res = await h.app.inject({
      method: 'HEAD',
      url: '/latest/meta-data/instance-id',
      remoteAddress: WEB,
    });
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe('');
    expect(res.headers['content-length']).toBe('19');
  });

  it('forwards the canonical form of an encoded path', async () => {
    await get('/latest/meta-data/instance%2Did');
    expect(h.upstreamCalls).toEqual(['/latest/meta-data/instance-id']);
  });

  it('conceals user-data, identity credentials and unknown paths with 404 (#35)', async () => {
    for (const p of [
      '/latest/user-data',
      '/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance',
      '/latest/meta-data/tags/instance/Name',
      '/foo',
    ]) {
      const res = await get(p);
      expect(res.statusCode, p).toBe(404);
      expect(res.body).toContain('404 - Not Found');
    }
    expect(h.upstreamCalls).toEqual([]);
  });

  it('passes user-data when --allow-path names it', async () => {
    await h.app.close();
    h = harness({ allowPath: ['user-data'], denyPath: ['meta-data/placement/**'] });
    expect((await get('/latest/user-data', '10.9.9.9')).statusCode).toBe(200);
    expect((await get('/latest/meta-data/placement/region', '10.9.9.9')).statusCode).toBe(404);
  });

  it.each([
    ['UPSTREAM_TIMEOUT', 504],
    ['UPSTREAM_UNAVAILABLE', 502],
  ] as const)('maps %s to %d with an IMDS body', async (code, status) => {
    h.setUpstream(async () => {
      throw new ImdsError(code, 'detail with 169.254.169.254');
    });
    const res = await get('/latest/meta-data/instance-id');
    expect(res.statusCode).toBe(status);
    expect(res.body).toContain(`<h1>${status} - `);
    expect(res.body).not.toContain('169.254');
  });

  it('refuses bodies, counts requests by route class, method and status', async () => {
    const res = await h.app.inject({
      method: 'GET',
      url: '/latest/meta-data/',
      remoteAddress: WEB,
      payload: 'x',
    });
    expect(res.statusCode).toBe(413);
    await get('/latest/meta-data/');
    await get('/latest/user-data');
    const samples = (await h.metrics.requests.get()).values.map((v) => v.labels);
    expect(samples).toEqual(
      expect.arrayContaining([
        { route: 'forward', method: 'GET', status: '200' },
        { route: 'concealed', method: 'GET', status: '404' },
      ]),
    );
  });
});

it('uses the injected clock for timestamps', () => {
  expect(T0).toBe(Date.parse('2026-03-01T12:00:00Z'));
});
