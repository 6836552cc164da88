// The server must answer malformed input with a clear 4xx and keep serving: raw bytes on a real socket,
// because an in-process inject() cannot produce them.
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { harness, standardPods, type Harness } from './fakes.js';
import { raw as rawOn, request, status } from './sockets.js';

let h: Harness;
let port: number;

beforeAll(async () => {
  h = harness();
  standardPods(h);
  h.pods.set('127.0.0.1', h.pods.get('10.0.0.1')!);
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  port = (h.app.server.address() as AddressInfo).port;
});
afterAll(() => h.app.close());

const raw = (bytes: string | Buffer) => rawOn(port, bytes);
const req = request;

describe('raw targets', () => {
  it.each([
    ['http://169.254.169.254/latest/meta-data/iam/security-credentials/', 400],
    ['169.254.169.254:80', 400],
    ['*', 400],
    ['/latest/meta-data/../meta-data/iam/security-credentials/', 400],
    ['/latest/./meta-data/iam/security-credentials/', 400],
    ['/latest//meta-data/iam/security-credentials/', 400],
    ['/latest/meta-data/iam/security-credentials%2Fapp-role', 400],
    ['/latest/meta-data/%2e%2e/meta-data/iam/', 400],
    ['/latest/meta-data/iam%5csecurity-credentials/', 400],
    ['/latest/meta-data/iam/security-credentials/%', 400],
    ['/latest/meta-data/iam/security-credentials/%zz', 400],
    ['/latest/meta-data/iam/security-credentials/%C0%AF', 400],
    ['/latest/meta-data/%252e%252e/', 400],
    ['/latest/meta-data/;/iam/', 400],
    ['/latest/meta-data/iam/security-credentials/?role', 400],
    ['/latest/meta-data/IAM/security-credentials/', 400],
    ['/latest/meta-data/iam/security-credentials/', 200],
  ])('%s → %d', async (target, want) => {
    const res = await raw(req(target));
    expect(status(res), res).toBe(want);
    expect(res).toMatch(/\r\nserver: EC2ws\r\n/i);
  });

  it('never sent any of them upstream', () => {
    expect(h.upstreamCalls).toEqual([]);
  });
});

describe('malformed requests', () => {
  it.each([
    ['bad method', 'FOO / HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['lower-case method', 'get / HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['garbage', '\x00\x01\x02garbage\r\n\r\n', 400],
    ['bad version', 'GET / HTTP/9.9\r\nHost: x\r\n\r\n', 400],
    ['huge header', req('/latest/meta-data/', `X-Big: ${'a'.repeat(20_000)}\r\n`), 431],
    ['header without colon', 'GET / HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n', 400],
    [
      'two content-lengths',
      'PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
      400,
    ],
    ['bad content-length', 'PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n', 400],
    [
      'chunked garbage',
      'PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n',
      413,
    ],
    ['body on GET', req('/latest/meta-data/', 'Content-Length: 5\r\n') + 'hello', 413],
    [
      'CL and TE together',
      'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      400,
    ],
    ['HTTP/1.1 without Host (RFC 9112 §3.2), in IMDS form', 'GET /latest/meta-data/ HTTP/1.1\r\n\r\n', 400],
    [
      'an expectation other than 100-continue is ignored',
      req('/latest/meta-data/', 'Expect: 21600\r\n'),
      200,
    ],
    ['PROPFIND', 'PROPFIND /latest/meta-data/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 405],
    ['CONNECT', 'CONNECT 169.254.169.254:80 HTTP/1.1\r\nHost: x\r\n\r\n', 405],
  ])('%s', async (_name, bytes, want) => {
    const res = await raw(bytes);
    expect(status(res), res).toBe(want);
    expect(res).toMatch(/\r\nserver: EC2ws\r\n/i);
  });

  it('still serves after all of that', async () => {
    const res = await raw(req('/latest/meta-data/iam/security-credentials/'));
    expect(status(res)).toBe(200);
    expect(res.endsWith('app-role')).toBe(true);
  });
});

describe('half-closed requests (a client shuts down its write side after sending)', () => {
  it('still gets an answer that takes time (upstream slower than the FIN)', async () => {
    h.setUpstream(async () => {
      await new Promise((r) => setTimeout(r, 150));
      return { status: 200, contentType: 'text/plain', body: Buffer.from('i-after-fin') };
    });
    const res = await rawOn(
      port,
      request('/latest/meta-data/instance-id').replace('Connection: close\r\n', ''),
    );
    expect(status(res), res).toBe(200);
    expect(res.endsWith('i-after-fin')).toBe(true);
  });

  it('gets the answers of pipelined requests, then the close', async () => {
    const two = request('/latest/meta-data/instance-id', '').replace('Connection: close\r\n', '');
    const res = await rawOn(port, two + two);
    expect(res.match(/HTTP\/1\.1 200/g)).toHaveLength(2);
  });

  it('with nothing sent, is closed at once', async () => {
    const t0 = performance.now();
    expect(await rawOn(port, '')).toBe('');
    expect(performance.now() - t0).toBeLessThan(500);
  });
});

describe('lingering close after a malformed request', () => {
  it('the client reads the 431 even while it is still sending, every time (no reset)', async () => {
    const huge = req('/latest/meta-data/', `X-Big: ${'a'.repeat(300_000)}\r\n`);
    const answers = await Promise.all(Array.from({ length: 10 }, () => raw(huge)));
    expect(answers.map(status)).toEqual(Array(10).fill(431));
  });
});
