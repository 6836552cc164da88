// The upstream client against a scripted HTTP server on loopback (a real socket, a fake IMDS).
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createUpstream, type UpstreamImds } from '../../../src/imds/upstream.js';
import { createLogger } from '../../../src/logger.js';
import { createMetrics } from '../../../src/metrics.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}
type Script = (s: Seen) => { status: number; body?: string | Buffer; type?: string; delayMs?: number };

let server: Server;
let seen: Seen[];
let script: Script;
let url: string;
let now: number;
let upstream: UpstreamImds;
const logger = createLogger('silent', new Writable({ write: (_c, _e, cb) => cb() }));
const metrics = createMetrics(new Registry(), { defaults: false });

const imds: Script = (s) => {
  if (s.method === 'PUT') return { status: 200, body: 'session-1' };
  if (s.headers['x-aws-ec2-metadata-token'] !== 'session-1') return { status: 401, body: 'no' };
  return { status: 200, body: 'i-123', type: 'text/plain' };
};

beforeEach(async () => {
  seen = [];
  script = imds;
  now = Date.parse('2026-03-01T00:00:00Z');
  server = createServer((req, res) => {
    const s = { method: req.method ?? '', url: req.url ?? '', headers: req.headers };
    seen.push(s);
    const a = script(s);
    setTimeout(() => {
      res.writeHead(a.status, a.type ? { 'content-type': a.type } : {});
      res.end(a.body ?? '');
    }, a.delayMs ?? 0);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  upstream = createUpstream({ url, timeoutMs: 300, clock: () => now, metrics, logger, v1RetryMs: 10_000 });
});
afterEach(async () => {
  await upstream.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('upstream session', () => {
  it('PUTs once for a session and sends only its token header (§13 #10)', async () => {
    const r1 = await upstream.forward('GET', '/latest/meta-data/instance-id');
    await upstream.forward('GET', '/latest/meta-data/instance-id');
    expect(r1).toEqual({ status: 200, contentType: 'text/plain', body: Buffer.from('i-123') });
    expect(seen.map((s) => s.method)).toEqual(['PUT', 'GET', 'GET']);
    expect(seen[0]!.headers['x-aws-ec2-metadata-token-ttl-seconds']).toBe('21600');
    for (const s of seen) {
      expect(s.headers['x-forwarded-for']).toBeUndefined();
      expect(s.headers.forwarded).toBeUndefined();
      expect(s.headers.via).toBeUndefined();
    }
  });

  it('refreshes the session before it expires', async () => {
    await upstream.forward('GET', '/x');
    now += 21_600_000 - 4 * 60_000;
    await upstream.forward('GET', '/x');
    expect(seen.map((s) => s.method)).toEqual(['PUT', 'GET', 'PUT', 'GET']);
  });

  it('re-PUTs once and retries when upstream rejects its token', async () => {
    await upstream.forward('GET', '/x');
    let n = 1;
    script = (s) =>
      s.method === 'PUT'
        ? { status: 200, body: `session-${++n}` }
        : s.headers['x-aws-ec2-metadata-token'] === 'session-2'
          ? { status: 200, body: 'ok' }
          : { status: 401 };
    const res = await upstream.forward('GET', '/x');
    expect(res.status).toBe(200);
    expect(seen.map((s) => s.method)).toEqual(['PUT', 'GET', 'GET', 'PUT', 'GET']);
  });

  it('answers 502, never relays 401, when a fresh session is refused too', async () => {
    script = (s) => (s.method === 'PUT' ? { status: 200, body: 'session-x' } : { status: 401 });
    await expect(upstream.forward('GET', '/x')).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
    expect(seen.map((s) => s.method)).toEqual(['PUT', 'GET', 'PUT', 'GET']);
    // The refused session is dropped: the next request starts with a new PUT.
    await expect(upstream.forward('GET', '/x')).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
    expect(seen.map((s) => s.method).slice(4)).toEqual(['PUT', 'GET', 'PUT', 'GET']);
  });

  it('takes a session at once when a token-less upstream starts to require IMDSv2', async () => {
    let v2 = false;
    script = (s) =>
      s.method === 'PUT'
        ? v2
          ? { status: 200, body: 'session-1' }
          : { status: 403 }
        : !v2 || s.headers['x-aws-ec2-metadata-token'] === 'session-1'
          ? { status: 200, body: 'ok' }
          : { status: 401 };
    expect((await upstream.forward('GET', '/x')).status).toBe(200);
    v2 = true;
    expect((await upstream.forward('GET', '/x')).status).toBe(200);
    expect(seen.map((s) => s.method)).toEqual(['PUT', 'GET', 'GET', 'PUT', 'GET']);
    expect(seen[4]!.headers['x-aws-ec2-metadata-token']).toBe('session-1');
  });

  it.each([403, 404, 405])(
    'goes token-less when the token PUT answers %d, and asks again later',
    async (status) => {
      script = (s) => (s.method === 'PUT' ? { status } : { status: 200, body: 'v1' });
      expect((await upstream.forward('GET', '/x')).status).toBe(200);
      expect(seen[1]!.headers['x-aws-ec2-metadata-token']).toBeUndefined();
      await upstream.forward('GET', '/x');
      now += 10_000;
      await upstream.forward('GET', '/x');
      expect(seen.map((s) => s.method)).toEqual(['PUT', 'GET', 'GET', 'PUT', 'GET']);
    },
  );

  it('fails with 502 when the session cannot be had (5xx on PUT)', async () => {
    script = () => ({ status: 500 });
    await expect(upstream.forward('GET', '/x')).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
    expect(await upstream.checkSession()).toBe(false);
  });

  it('relays status, content type and binary bodies; 429 once, no retry (§13 #17)', async () => {
    const bytes = Buffer.from([0, 255, 1, 254, 13, 10]);
    script = (s) =>
      s.method === 'PUT'
        ? { status: 200, body: 'session-1' }
        : { status: 200, body: bytes, type: 'application/octet-stream' };
    const r = await upstream.forward('GET', '/latest/user-data');
    expect(r.body.equals(bytes)).toBe(true);
    expect(r.contentType).toBe('application/octet-stream');
    script = (s) => (s.method === 'PUT' ? { status: 200, body: 'session-1' } : { status: 429, body: 'slow' });
    expect((await upstream.forward('GET', '/x')).status).toBe(429);
    expect(seen.filter((s) => s.url === '/x')).toHaveLength(1);
  });

  it('times out with 504 and fails to connect with 502', async () => {
    script = (s) =>
      s.method === 'PUT' ? { status: 200, body: 'session-1' } : { status: 200, delayMs: 1000 };
    await expect(upstream.forward('GET', '/slow')).rejects.toMatchObject({
      code: 'UPSTREAM_TIMEOUT',
      status: 504,
    });
    const dead = createUpstream({
      url: 'http://127.0.0.1:1',
      timeoutMs: 300,
      clock: () => now,
      metrics,
      logger,
    });
    await expect(dead.forward('GET', '/x')).rejects.toMatchObject({
      code: 'UPSTREAM_UNAVAILABLE',
      status: 502,
    });
    await dead.close();
  });

  it('refuses over-long upstream bodies with UPSTREAM_INVALID', async () => {
    const small = createUpstream({ url, timeoutMs: 300, clock: () => now, metrics, logger, maxBodyBytes: 4 });
    script = (s) => (s.method === 'PUT' ? { status: 200, body: 'ab' } : { status: 200, body: 'too long' });
    await expect(small.forward('GET', '/x')).rejects.toMatchObject({ code: 'UPSTREAM_INVALID', status: 502 });
    await small.close();
  });
});

describe('node credentials and identity document', () => {
  const role = (exp: string) =>
    JSON.stringify({
      Code: 'Success',
      AccessKeyId: 'AKNODE',
      SecretAccessKey: 'node-secret',
      Token: 'node-token',
      Expiration: exp,
    });

  it('fetches listing then role, and refetches an already expired set at most once a minute', async () => {
    script = (s) =>
      s.method === 'PUT'
        ? { status: 200, body: 'session-1' }
        : s.url.endsWith('/security-credentials/')
          ? { status: 200, body: 'node-role' }
          : { status: 200, body: role('2020-04-02T00:49:51Z') };
    const c = await upstream.getNodeCredentials();
    expect(c).toMatchObject({
      accessKeyId: 'AKNODE',
      secretAccessKey: 'node-secret',
      sessionToken: 'node-token',
    });
    expect(seen.map((s) => s.url)).toEqual([
      '/latest/api/token',
      '/latest/meta-data/iam/security-credentials/',
      '/latest/meta-data/iam/security-credentials/node-role',
    ]);
    await upstream.getNodeCredentials();
    now += 59_000;
    await upstream.getNodeCredentials();
    expect(seen).toHaveLength(3);
    now += 1_000;
    await upstream.getNodeCredentials();
    expect(seen).toHaveLength(5);
  });

  it('caches valid credentials until 5 minutes before expiry and keeps them if a refresh fails', async () => {
    const exp = new Date(now + 3600_000).toISOString();
    let fail = false;
    script = (s) =>
      s.method === 'PUT'
        ? { status: 200, body: 'session-1' }
        : fail
          ? { status: 500 }
          : s.url.endsWith('/')
            ? { status: 200, body: 'node-role\n' }
            : { status: 200, body: role(exp) };
    await upstream.getNodeCredentials();
    now += 3300_000 - 1;
    await upstream.getNodeCredentials();
    expect(seen).toHaveLength(3);
    now += 1;
    fail = true;
    expect((await upstream.getNodeCredentials()).accessKeyId).toBe('AKNODE');
  });

  it.each([
    ['no role', { status: 404 }],
    ['bad JSON', { status: 200, body: 'nope' }],
    ['Code failure', { status: 200, body: JSON.stringify({ Code: 'AssumeRoleUnauthorizedAccess' }) }],
    ['missing keys', { status: 200, body: JSON.stringify({ Code: 'Success' }) }],
  ])('fails with CREDENTIALS_UNAVAILABLE on %s', async (_n, answer) => {
    script = (s) =>
      s.method === 'PUT'
        ? { status: 200, body: 'session-1' }
        : s.url.endsWith('/') && answer.status === 200
          ? { status: 200, body: 'r' }
          : answer;
    await expect(upstream.getNodeCredentials()).rejects.toMatchObject({ code: 'CREDENTIALS_UNAVAILABLE' });
  });

  it('reads the identity document once', async () => {
    const doc = { region: 'eu-west-1', accountId: '123456789012', instanceId: 'i-1' };
    script = (s) =>
      s.method === 'PUT' ? { status: 200, body: 'session-1' } : { status: 200, body: JSON.stringify(doc) };
    expect(await upstream.identityDocument()).toEqual(doc);
    await upstream.identityDocument();
    expect(seen.filter((s) => s.method === 'GET')).toHaveLength(1);
  });

  it('retries the identity document after a failure', async () => {
    script = (s) => (s.method === 'PUT' ? { status: 200, body: 'session-1' } : { status: 200, body: '{}' });
    await expect(upstream.identityDocument()).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
    script = (s) =>
      s.method === 'PUT'
        ? { status: 200, body: 'session-1' }
        : { status: 200, body: '{"region":"r","accountId":"a","instanceId":"i"}' };
    expect((await upstream.identityDocument()).region).toBe('r');
  });
});
