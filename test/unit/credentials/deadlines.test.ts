// Deadlines of the credential path: how long a pod waits for STS (the cache's waitMs), how long one STS
// call may run (callSts), and the real SDK client's bounds against a stand-in STS on loopback that
// accepts and stalls, or sends headers and then trickles. The SDK's warnings must reach the JSON log only.
import { AssumeRoleWithWebIdentityCommand } from '@aws-sdk/client-sts';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createCredentialCache } from '../../../src/credentials/cache.js';
import { callSts, createStsClient, stsErrorCode } from '../../../src/credentials/sts-call.js';
import type { CredentialIssuer, Credentials } from '../../../src/credentials/types.js';
import { createLogger } from '../../../src/logger.js';
import { startHostileUpstream, type HostileUpstream } from '../../env/hostile-upstream.js';
import { ROLE, deps, pod } from './helpers.js';

const elapsed = async (p: Promise<unknown>) => {
  const t0 = performance.now();
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  return { err, ms: performance.now() - t0 };
};

describe('stsErrorCode', () => {
  it.each([
    [Object.assign(new Error('x'), { name: 'TimeoutError', code: 'ETIMEDOUT' }), 'Timeout'],
    [Object.assign(new Error('x'), { name: 'TimeoutError' }), 'Timeout'],
    [Object.assign(new Error('x'), { code: 'ETIMEDOUT' }), 'Timeout'],
    [Object.assign(new Error('x'), { code: 'ECONNREFUSED' }), 'NetworkError'],
    [Object.assign(new Error('x'), { name: 'TimeoutError', code: 'ECONNRESET' }), 'NetworkError'],
    [Object.assign(new Error('x'), { name: 'AbortError' }), 'NetworkError'],
    [
      Object.assign(new Error('x'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }),
      'AccessDenied',
    ],
    [Object.assign(new Error('x'), { name: 'a b', $metadata: { httpStatusCode: 400 } }), 'UnknownError'],
  ])('%s → %s', (err, want) => expect(stsErrorCode(err)).toBe(want));
});

describe('the cache bounds a pod’s wait for STS', () => {
  const creds = (d: ReturnType<typeof deps>): Credentials => ({
    accessKeyId: 'ASIAW',
    secretAccessKey: 's',
    sessionToken: 't',
    expiration: new Date(d.clock() + 3600_000),
    lastUpdated: new Date(d.clock()),
  });

  it('answers 503 at waitMs while the call goes on, and a later request gets its result', async () => {
    const d = deps();
    let release: () => void = () => undefined;
    let calls = 0;
    const issuer: CredentialIssuer = {
      issue: () => {
        calls += 1;
        return new Promise((r) => (release = () => r(creds(d))));
      },
    };
    const cache = createCredentialCache(issuer, { ...d, sweepIntervalMs: 0, waitMs: 100 });
    const first = await elapsed(cache.issue({ pod: pod(), roleArn: ROLE }));
    expect(first.err).toMatchObject({ code: 'CREDENTIALS_UNAVAILABLE', status: 503 });
    expect(first.ms).toBeGreaterThanOrEqual(95);
    expect(first.ms).toBeLessThan(300);
    // A second pod request joins the same call and also stops waiting at its own deadline.
    expect((await elapsed(cache.issue({ pod: pod(), roleArn: ROLE }))).err).toMatchObject({ status: 503 });
    expect(await d.metric('imdsgate_credential_cache_events_total', { event: 'wait_timeout' })).toBe(2);
    release();
    expect((await cache.issue({ pod: pod(), roleArn: ROLE })).accessKeyId).toBe('ASIAW');
    expect(calls).toBe(1);
  });

  it('waits as long as the call takes when waitMs is 0', async () => {
    const d = deps();
    const issuer: CredentialIssuer = {
      issue: () => new Promise((r) => setTimeout(() => r(creds(d)), 150)),
    };
    const cache = createCredentialCache(issuer, { ...d, sweepIntervalMs: 0, waitMs: 0 });
    expect((await cache.issue({ pod: pod(), roleArn: ROLE })).accessKeyId).toBe('ASIAW');
  });
});

describe('callSts bounds one call', () => {
  it('rejects at the total deadline, aborts the call and counts a Timeout', async () => {
    const d = deps();
    let signal: AbortSignal | undefined;
    const never = (s: AbortSignal) => ((signal = s), new Promise<never>(() => undefined));
    const { err, ms } = await elapsed(callSts('AssumeRole', never, {}, { ...d, stsTotalMs: 120 }));
    expect(err).toMatchObject({ code: 'CREDENTIALS_UNAVAILABLE', detail: 'AssumeRole: Timeout' });
    expect(ms).toBeLessThan(400);
    expect(signal?.aborted).toBe(true);
    expect(await d.metric('imdsgate_sts_requests_total', { outcome: 'Timeout' })).toBe(1);
  });
});

describe('the STS client against a stand-in that misbehaves', () => {
  let sts: HostileUpstream;
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger(
    'info',
    new Writable({
      write(c: Buffer, _e, cb) {
        lines.push(JSON.parse(c.toString()) as Record<string, unknown>);
        cb();
      },
    }),
  );
  const limits = { connectMs: 300, firstByteMs: 400, idleMs: 400, totalMs: 700 };
  const d = deps();
  const call = () => {
    const client = createStsClient({ region: 'us-east-1', endpoint: sts.url, logger, limits });
    const cmd = new AssumeRoleWithWebIdentityCommand({
      RoleArn: ROLE,
      RoleSessionName: 'imdsgate.a.b',
      WebIdentityToken: 'token',
    });
    return callSts(
      'AssumeRoleWithWebIdentity',
      (abortSignal) => client.send(cmd, { abortSignal }),
      {},
      { ...d, logger, stsTotalMs: limits.totalMs },
    ).finally(() => client.destroy());
  };

  beforeAll(async () => {
    sts = await startHostileUpstream();
  });
  afterAll(() => sts.stop());
  afterEach(() => vi.restoreAllMocks());

  it.each([
    ['stall', 'accepts and never answers: cut at the first-byte bound', 400],
    ['trickle', 'sends headers, then a byte every 100 ms: cut at the total bound', 700],
  ] as const)('%s %s', async (mode, _what, bound) => {
    const warn = vi.spyOn(console, 'warn');
    const stderr = vi.spyOn(process.stderr, 'write');
    sts.mode = mode;
    const { err, ms } = await elapsed(call());
    expect(err).toMatchObject({
      code: 'CREDENTIALS_UNAVAILABLE',
      detail: 'AssumeRoleWithWebIdentity: Timeout',
    });
    expect(ms).toBeGreaterThanOrEqual(bound - 20);
    expect(ms).toBeLessThan(bound + 400);
    // The SDK's own text (its handler's warnings say "@smithy/node-http-handler") never goes to the console.
    // (A Node process warning may: serve() routes those into the log, see src/serve.ts.)
    expect(warn).not.toHaveBeenCalled();
    expect(stderr.mock.calls.filter(([c]) => String(c).includes('@smithy'))).toEqual([]);
    await expect.poll(() => sts.openSockets(), { timeout: 2000 }).toBe(0);
  });
});
