// The server must answer malformed input with a clear 4xx and keep serving: raw bytes on a real socket,
// because an in-process inject() cannot produce them.
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { harness, standardPods, type Harness } from './fakes.js';

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

function raw(bytes: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = connect(port, '127.0.0.1', () => s.end(bytes));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    s.setTimeout(3000, () => s.destroy());
  });
}
const status = (res: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(res)?.[1]);
const req = (target: string, extra = '') =>
  `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${extra}\r\n`;

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
    ['PROPFIND', 'PROPFIND /latest/meta-data/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 405],
    ['CONNECT', 'CONNECT 169.254.169.254:80 HTTP/1.1\r\nHost: x\r\n\r\n', 405],
  ])('%s', async (_name, bytes, want) => {
    const res = await raw(bytes);
    expect(status(res), res).toBe(want);
  });

  it('still serves after all of that', async () => {
    const res = await raw(req('/latest/meta-data/iam/security-credentials/'));
    expect(status(res)).toBe(200);
    expect(res.endsWith('app-role')).toBe(true);
  });
});
