// Issue 11, point 6: property-based fuzzing of the front door over raw sockets against the real agent
// (serve() with the real upstream client and the real STS issuer against moto). fast-check generates
// request lines, headers, targets and bodies, valid and broken, from three sources (a pod with a role, one
// without, an unknown address); for ~20 s every generated exchange must end (answered or closed) within a
// deadline, answer only in HTTP/1.1 with a status the agent can give, and never carry a byte of the node's
// credentials, which the upstream stand-in hands out with recognisable values. Afterwards the agent is
// alive: /healthz answers and a pod still gets its credentials. A failure prints fast-check's seed and
// the shrunk counterexample.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { raw } from '../../unit/http/sockets.js';
import {
  ROLE,
  ROLE_ARN,
  call,
  recordingUpstream,
  startAemm,
  startAgent,
  type Aemm,
  type Agent,
} from './harness.js';

const NODE = {
  key: 'ASIAFUZZNODEKEY00000',
  secret: 'fuzz-node-secret-never-to-a-pod',
  token: 'fuzz-node-session',
};
const TIME_LIMIT_MS = Number(process.env.FUZZ_MS ?? 20_000);
const DEADLINE_MS = 3_000;
const STATUSES = new Set([200, 400, 401, 403, 404, 405, 408, 413, 429, 431, 500, 502, 503, 504]);
const SOURCES = ['127.0.0.1', '127.0.0.2', '127.0.0.4'];

let aemm: Aemm;
let rec: Awaited<ReturnType<typeof recordingUpstream>>;
let agent: Agent;
let port: number;

beforeAll(async () => {
  aemm = await startAemm();
  rec = await recordingUpstream(aemm.url, (r) => {
    if (r.url === '/latest/meta-data/iam/security-credentials/')
      return { status: 200, body: 'fuzz-node-role' };
    if (r.url.startsWith('/latest/meta-data/iam/security-credentials/fuzz-node-role'))
      return { status: 200, body: nodeCredentials() };
    return undefined;
  });
  agent = await startAgent({
    upstream: rec.url,
    pods: [
      { ip: '127.0.0.1', name: 'fuzz-app', roleArn: ROLE_ARN },
      { ip: '127.0.0.2', name: 'fuzz-norole' },
    ],
  });
  port = Number(new URL(agent.url).port);
  const warm = await call(`${agent.url}/latest/meta-data/iam/security-credentials/${ROLE}`);
  if (warm.status !== 200) throw new Error(`warm-up answered ${warm.status}: ${warm.text}`);
});
afterAll(async () => {
  await agent?.stop();
  await rec?.stop();
  await aemm?.stop();
});

function nodeCredentials(): string {
  const now = Date.now();
  return JSON.stringify({
    Code: 'Success',
    Type: 'AWS-HMAC',
    AccessKeyId: NODE.key,
    SecretAccessKey: NODE.secret,
    Token: NODE.token,
    Expiration: new Date(now + 3600_000).toISOString(),
    LastUpdated: new Date(now).toISOString(),
  });
}

const PATHS = [
  '/latest/meta-data/iam/security-credentials/',
  `/latest/meta-data/iam/security-credentials/${ROLE}`,
  '/latest/meta-data/iam/security-credentials/fuzz-node-role',
  '/latest/meta-data/iam/info',
  '/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance',
  '/latest/meta-data/',
  '/latest/meta-data/instance-id',
  '/latest/api/token',
  '/2021-03-23/meta-data/iam/security-credentials/',
  '/latest/dynamic/instance-identity/document',
  '/',
];
const SPICE = [
  '%2e',
  '%2F',
  '%00',
  '..',
  '.',
  '//',
  '\\',
  '%',
  '%zz',
  '?',
  '#',
  ';',
  'é',
  '\u0000',
  '\t',
  ' ',
  '%252e',
];

const text = (max: number) => fc.string({ unit: 'binary', maxLength: max });
const target = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...PATHS) },
  fc
    .tuple(fc.constantFrom(...PATHS), fc.nat(60), fc.constantFrom(...SPICE))
    .map(([p, i, s]) => p.slice(0, i % (p.length + 1)) + s + p.slice(i % (p.length + 1))),
  fc.constantFrom('*', 'http://169.254.169.254/latest/meta-data/', '169.254.169.254:80', ''),
  text(80),
  fc.nat(20_000).map((n) => `/latest/meta-data/${'a'.repeat(n)}`),
);
// Each part is mostly well formed and sometimes broken, so that whole requests often get past the parser
// and reach the pipeline (and the upstream and STS behind it), not only the parser's error path.
const mostly = <T>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 5, arbitrary: good }, { weight: 1, arbitrary: bad });
const method = mostly(
  fc.constantFrom('GET', 'GET', 'HEAD', 'PUT'),
  fc.oneof(
    fc.constantFrom('POST', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT', 'PATCH', 'get', 'PROPFIND'),
    text(12),
  ),
);
const version = mostly(
  fc.constant('HTTP/1.1'),
  fc.constantFrom('HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1x', 'http/1.1', '', 'HTTP/0.9'),
);
const headerName = mostly(
  fc.constantFrom(
    'Host',
    'X-aws-ec2-metadata-token',
    'X-aws-ec2-metadata-token-ttl-seconds',
    'Content-Length',
    'Transfer-Encoding',
    'X-Forwarded-For',
    'Connection',
    'Expect',
    'Upgrade',
  ),
  text(20),
);
const headerValue = fc.oneof(
  fc.constantFrom(
    '21600',
    '0',
    '-1',
    '1e3',
    'chunked',
    'close',
    'keep-alive',
    '100-continue',
    'a\r\nX-Injected: 1',
    '',
  ),
  text(60),
  fc.nat(70_000).map((n) => 'v'.repeat(n)),
);
const exchange = fc.record({
  source: fc.constantFrom(...SOURCES),
  method,
  target,
  version,
  headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 6 }),
  eol: mostly(fc.constant('\r\n'), fc.constantFrom('\n', '\r')),
  body: fc.option(fc.uint8Array({ maxLength: 2048 }), { nil: undefined, freq: 4 }),
  withHost: fc.boolean(),
});

type Exchange = typeof exchange extends fc.Arbitrary<infer T> ? T : never;

function bytes(e: Exchange): Buffer {
  const lines = [`${e.method} ${e.target} ${e.version}`.trimEnd()];
  if (e.withHost) lines.push('Host: 169.254.169.254');
  for (const [n, v] of e.headers) lines.push(`${n}: ${v}`);
  const head = Buffer.from(lines.join(e.eol) + e.eol + e.eol, 'latin1');
  return e.body === undefined ? head : Buffer.concat([head, Buffer.from(e.body)]);
}

describe(`fuzzing the front door for ${TIME_LIMIT_MS / 1000} s`, () => {
  let runs = 0;
  const statuses = new Map<number, number>();

  it(
    'every exchange ends within the deadline, in HTTP/1.1, with a known status and no node secret',
    async () => {
      await fc.assert(
        fc.asyncProperty(exchange, async (e) => {
          runs++;
          const t0 = performance.now();
          const res = await raw(port, bytes(e), { localAddress: e.source, timeoutMs: DEADLINE_MS + 1000 });
          const ms = performance.now() - t0;
          expect(ms, 'hang').toBeLessThan(DEADLINE_MS);
          for (const s of [NODE.key, NODE.secret, NODE.token]) expect(res).not.toContain(s);
          // An interim 100 Continue (Expect: 100-continue, RFC 9110 §15.2.1) may precede the answer.
          const final = res.replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, '');
          if (final === '') return;
          const m = /^HTTP\/1\.1 (\d{3}) /.exec(final);
          expect(m, final.slice(0, 200)).not.toBeNull();
          const status = Number(m![1]);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          expect(STATUSES.has(status), final.slice(0, 200)).toBe(true);
          expect(final, 'IMDS-shaped').toMatch(/\r\nserver: EC2ws\r\n/i);
        }),
        { numRuns: 1_000_000, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false },
      );
      console.info(
        `fuzz: ${runs} exchanges, answers by status ${JSON.stringify(Object.fromEntries(statuses))}`,
      );
      // Enough exchanges ran to mean something, and they reached more than the parser's error path.
      expect(runs).toBeGreaterThan(300);
      expect(statuses.get(200) ?? 0).toBeGreaterThan(0);
      expect(statuses.get(400) ?? 0).toBeGreaterThan(0);
    },
    TIME_LIMIT_MS + 30_000,
  );

  it('leaves the agent alive and serving', async () => {
    expect((await call(`${agent.metricsUrl}/healthz`)).status).toBe(200);
    const res = await call(`${agent.url}/latest/meta-data/iam/security-credentials/${ROLE}`);
    expect(res.status).toBe(200);
    expect(res.text).not.toContain(NODE.secret);
    // The node credentials did sign the pod's AssumeRole, so the stand-in's values were really in play.
    expect(rec.seen.some((r) => r.url.endsWith('/fuzz-node-role'))).toBe(true);
  });
});
