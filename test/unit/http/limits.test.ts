// Front-door limits over real loopback sockets: 127.0.0.2 plays the flooding pod, 127.0.0.3 its
// neighbour (every 127.0.0.0/8 address is local on Linux, and the agent sees each as its own source).
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CountPerKey } from '../../../src/http/limits.js';
import { harness, standardPods, type Harness } from './fakes.js';
import { hold, raw, request, status, type Held } from './sockets.js';

const CAP = 5;
const HEADERS_MS = 800;
const FLOODER = '127.0.0.2';
const NEIGHBOUR = '127.0.0.3';
const CREDS = '/latest/meta-data/iam/security-credentials/';

let h: Harness;
let port: number;
const held: Held[] = [];

beforeAll(async () => {
  h = harness({ maxConnectionsPerSource: CAP, maxRequestsPerSource: 2, headersTimeoutMs: HEADERS_MS });
  standardPods(h);
  for (const ip of [FLOODER, NEIGHBOUR]) h.pods.set(ip, h.pods.get('10.0.0.1')!);
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  port = (h.app.server.address() as AddressInfo).port;
});
afterAll(async () => {
  for (const c of held) c.socket.destroy();
  await h.app.close();
});

const metric = async (name: string) =>
  (await h.metrics.registry.getSingleMetricAsString(name)).split('\n').filter((l) => !l.startsWith('#'));

describe('connections per source', () => {
  it('refuses the connection past the cap with an IMDS-shaped 429, and serves a neighbour meanwhile', async () => {
    for (let i = 0; i < CAP; i++) held.push(await hold(port, { localAddress: FLOODER }));
    const extra = await hold(port, { localAddress: FLOODER });
    const { data, ms } = await extra.closed;
    expect(status(data), data).toBe(429);
    expect(data).toMatch(/\r\nServer: EC2ws\r\n/);
    expect(data).toContain('<title>429 - Too Many Requests</title>');
    expect(ms).toBeLessThan(HEADERS_MS);
    const t0 = performance.now();
    const res = await raw(port, request(CREDS), { localAddress: NEIGHBOUR });
    expect(status(res)).toBe(200);
    expect(performance.now() - t0).toBeLessThan(500);
    expect(await metric('imdsgate_connections_refused_total')).toContain(
      'imdsgate_connections_refused_total{reason="source_connections"} 1',
    );
    expect(await metric('imdsgate_connections_open')).toContain(`imdsgate_connections_open ${CAP}`);
  });

  it('closes the idle ones at the first-byte deadline, and the source may connect again', async () => {
    const closes = await Promise.all(held.splice(0).map((c) => c.closed));
    for (const c of closes) {
      expect(c.data).toBe('');
      expect(c.ms).toBeGreaterThanOrEqual(HEADERS_MS - 50);
      expect(c.ms).toBeLessThan(HEADERS_MS + 500);
    }
    await expect.poll(() => metric('imdsgate_connections_open')).toContain('imdsgate_connections_open 0');
    expect(status(await raw(port, request(CREDS), { localAddress: FLOODER }))).toBe(200);
  });

  it('answers a request head that never completes with 408 within the deadline plus the check interval', async () => {
    const slow = await hold(port, { localAddress: FLOODER, send: 'GET /latest/meta-data/ HTTP/1.1\r\nHo' });
    const { data, ms } = await slow.closed;
    expect(status(data), data).toBe(408);
    expect(data).toContain('<title>408 - Request Timeout</title>');
    expect(ms).toBeLessThan(HEADERS_MS + 1_500);
    expect(await metric('imdsgate_connections_refused_total')).toContain(
      'imdsgate_connections_refused_total{reason="request_timeout"} 1',
    );
  });

  it('logs refusals at most once per interval', async () => {
    const before = h.logs.filter((l) => l.msg === 'front-door limit reached').length;
    const conns = await Promise.all(
      Array.from({ length: CAP + 4 }, () => hold(port, { localAddress: FLOODER })),
    );
    const results = await Promise.all(conns.slice(CAP).map((c) => c.closed));
    for (const r of results) expect(status(r.data)).toBe(429);
    for (const c of conns) c.socket.destroy();
    await expect.poll(() => metric('imdsgate_connections_open')).toContain('imdsgate_connections_open 0');
    const lines = h.logs.filter((l) => l.msg === 'front-door limit reached').length - before;
    expect(lines).toBe(0); // the first test already logged source_connections within the interval
  });
});

describe('requests in flight per source', () => {
  it('answers 429 past the cap while the first requests wait upstream; other sources unaffected', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    h.setUpstream(async () => {
      await gate;
      return { status: 200, contentType: 'text/plain', body: Buffer.from('i-slow') };
    });
    const slow = [1, 2].map(() =>
      raw(port, request('/latest/meta-data/instance-id'), { localAddress: FLOODER }),
    );
    await new Promise((r) => setTimeout(r, 100));
    const third = await raw(port, request('/latest/meta-data/instance-id'), { localAddress: FLOODER });
    expect(status(third)).toBe(429);
    expect(status(await raw(port, request(CREDS), { localAddress: NEIGHBOUR }))).toBe(200);
    release();
    for (const r of await Promise.all(slow)) expect(status(r)).toBe(200);
    expect(await metric('imdsgate_connections_refused_total')).toContain(
      'imdsgate_connections_refused_total{reason="source_requests"} 1',
    );
    expect(status(await raw(port, request(CREDS), { localAddress: FLOODER }))).toBe(200);
  });
});

describe('CountPerKey', () => {
  it('counts up to the cap and forgets keys at zero', () => {
    const c = new CountPerKey();
    expect([c.tryAdd('a', 2), c.tryAdd('a', 2), c.tryAdd('a', 2), c.tryAdd('b', 2)]).toEqual([
      true,
      true,
      false,
      true,
    ]);
    c.remove('a');
    expect(c.get('a')).toBe(1);
    c.remove('a');
    c.remove('b');
    c.remove('b');
    expect([c.get('a'), c.get('b'), c.keys]).toEqual([0, 0, 0]);
  });
});

describe('connections in total', () => {
  it('closes connections past --max-connections unanswered, whatever their source, and counts them', async () => {
    const small = harness({ maxConnections: 16, maxConnectionsPerSource: 64 });
    standardPods(small);
    small.pods.set(NEIGHBOUR, small.pods.get('10.0.0.1')!);
    await small.app.listen({ host: '127.0.0.1', port: 0 });
    const p = (small.app.server.address() as AddressInfo).port;
    const conns = await Promise.all(Array.from({ length: 16 }, () => hold(p, { localAddress: FLOODER })));
    await expect
      .poll(async () => await small.metrics.registry.getSingleMetricAsString('imdsgate_connections_open'))
      .toContain('imdsgate_connections_open 16');
    const res = await raw(p, request(CREDS), { localAddress: NEIGHBOUR });
    expect(res).toBe('');
    expect(
      await small.metrics.registry.getSingleMetricAsString('imdsgate_connections_refused_total'),
    ).toContain('imdsgate_connections_refused_total{reason="total_connections"} 1');
    for (const c of conns) c.socket.destroy();
    await expect
      .poll(async () => status(await raw(p, request(CREDS), { localAddress: NEIGHBOUR })))
      .toBe(200);
    await small.app.close();
  });
});
