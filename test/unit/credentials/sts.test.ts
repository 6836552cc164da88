import { AssumeRoleCommand } from '@aws-sdk/client-sts';
import { describe, expect, it } from 'vitest';
import { ImdsError } from '../../../src/errors.js';
import { roleSessionName } from '../../../src/credentials/session.js';
import { createAssumeRoleIssuer, type AssumeRoleIssuerOptions } from '../../../src/credentials/sts.js';
import { regionalStsEndpoint, type StsOutput } from '../../../src/credentials/sts-call.js';
import { SESSION_NAME } from '../../../src/credentials/sts-limits.js';
import { ROLE, deps, pod } from './helpers.js';

function setup(over: Partial<AssumeRoleIssuerOptions> = {}, answer?: () => Promise<StsOutput>) {
  const d = deps();
  const calls: AssumeRoleCommand[] = [];
  const issuer = createAssumeRoleIssuer({
    region: 'eu-west-1',
    nodeCredentials: async () => ({ accessKeyId: 'AKIDNODE', secretAccessKey: 'x' }),
    durationSeconds: 3600,
    sessionTags: false,
    clock: d.clock,
    metrics: d.metrics,
    logger: d.logger,
    send: async (cmd) => {
      calls.push(cmd as AssumeRoleCommand);
      return answer
        ? answer()
        : {
            Credentials: {
              AccessKeyId: 'ASIAPOD',
              SecretAccessKey: 'secret',
              SessionToken: 'tok',
              Expiration: new Date(d.clock() + 3600_000),
            },
            AssumedRoleUser: { Arn: 'arn:aws:sts::123456789012:assumed-role/app/s' },
          };
    },
    ...over,
  });
  return { d, issuer, calls };
}

describe('roleSessionName', () => {
  it.each([
    [{ namespace: 'team-a', name: 'web-0' }, 'imdsgate.team-a.web-0'],
    [{ namespace: 'a-b', name: 'c' }, 'imdsgate.a-b.c'],
    [{ namespace: 'a', name: 'b-c' }, 'imdsgate.a.b-c'],
  ])('%o → %s', (p, want) => expect(roleSessionName(p)).toBe(want));

  it('cuts long names to 64 with a hash suffix, keeping them unique and valid', () => {
    const a = roleSessionName({ namespace: 'n'.repeat(63), name: 'p'.repeat(200) + 'a' });
    const b = roleSessionName({ namespace: 'n'.repeat(63), name: 'p'.repeat(200) + 'b' });
    expect(a).toHaveLength(64);
    expect(a).not.toBe(b);
    expect(a).toMatch(SESSION_NAME);
    expect(a.startsWith('imdsgate.nnn')).toBe(true);
  });

  it('replaces characters STS refuses and still hashes for uniqueness', () => {
    const n = roleSessionName({ namespace: 'ns', name: 'we b/x' });
    expect(n).toMatch(SESSION_NAME);
    expect(n).not.toBe(roleSessionName({ namespace: 'ns', name: 'we_b_x' }));
  });
});

describe('createAssumeRoleIssuer', () => {
  it('calls AssumeRole with the derived session and returns Date expiration and account', async () => {
    const { issuer, calls } = setup();
    const c = await issuer.issue({ pod: pod(), roleArn: ROLE, externalId: 'ext-1' });
    expect(calls[0]?.input).toEqual({
      RoleArn: ROLE,
      RoleSessionName: 'imdsgate.team-a.web-0',
      DurationSeconds: 3600,
      ExternalId: 'ext-1',
    });
    expect(c.expiration).toBeInstanceOf(Date);
    expect(c).toMatchObject({ accessKeyId: 'ASIAPOD', sessionToken: 'tok', accountId: '123456789012' });
  });

  it('adds the kubernetes-* session tags when switched on', async () => {
    const { issuer, calls } = setup({ sessionTags: true });
    await issuer.issue({ pod: pod(), roleArn: ROLE });
    expect(calls[0]?.input.Tags).toEqual([
      { Key: 'kubernetes-namespace', Value: 'team-a' },
      { Key: 'kubernetes-pod-name', Value: 'web-0' },
      { Key: 'kubernetes-pod-uid', Value: '7c9e6679-7425-40de-944b-e07fc1f90ae7' },
      { Key: 'kubernetes-service-account', Value: 'web' },
      { Key: 'kubernetes-node', Value: 'node-1' },
    ]);
  });

  it('keys by everything that shapes the session', () => {
    const { issuer } = setup({ sessionTags: true });
    const k = (over: object) => issuer.keyFor!({ pod: pod(), roleArn: ROLE, ...over });
    const base = k({});
    expect(k({})).toBe(base);
    expect(k({ externalId: 'ext-2' })).not.toBe(base);
    expect(k({ roleArn: `${ROLE}2` })).not.toBe(base);
    expect(k({ pod: pod({ uid: 'other' }) })).not.toBe(base);
    expect(k({ pod: pod({ name: 'web-1' }) })).not.toBe(base);
  });

  it.each([
    ['an invalid external ID', { externalId: 'x' }, 'ExternalId'],
    ['an external ID with a space', { externalId: 'has space' }, 'ExternalId'],
    ['an invalid role ARN', { roleArn: 'notanarn' }, 'not an IAM role ARN'],
    ['a tag value STS refuses', { pod: pod({ serviceAccount: 'sa#1' }) }, 'session tag'],
  ])('rejects %s before any call', async (_what, over, detail) => {
    const { d, issuer, calls } = setup({ sessionTags: true });
    const err = await issuer.issue({ pod: pod(), roleArn: ROLE, ...over }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImdsError);
    expect((err as ImdsError).code).toBe('CREDENTIALS_UNAVAILABLE');
    expect((err as ImdsError).detail).toContain(detail);
    expect(calls).toHaveLength(0);
    expect(await d.metric('imdsgate_sts_requests_total', { outcome: 'rejected_locally' })).toBe(1);
  });

  it.each([899, 3601, 43200, 1000.5])('refuses DurationSeconds %d at construction (role chaining)', (s) => {
    expect(() => setup({ durationSeconds: s })).toThrow(/DurationSeconds/);
  });

  it('maps an STS error to CREDENTIALS_UNAVAILABLE with the STS code, counted', async () => {
    const stsError = Object.assign(new Error('User is not authorized'), {
      name: 'AccessDenied',
      $metadata: { httpStatusCode: 403 },
    });
    const { d, issuer } = setup({}, () => Promise.reject(stsError));
    const err = (await issuer.issue({ pod: pod(), roleArn: ROLE }).catch((e: unknown) => e)) as ImdsError;
    expect(err.code).toBe('CREDENTIALS_UNAVAILABLE');
    expect(err.status).toBe(503);
    expect(err.detail).toBe('AssumeRole: AccessDenied');
    expect(
      await d.metric('imdsgate_sts_requests_total', { api: 'AssumeRole', outcome: 'AccessDenied' }),
    ).toBe(1);
  });

  it('labels a connection failure NetworkError', async () => {
    const { issuer } = setup({}, () =>
      Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })),
    );
    const err = (await issuer.issue({ pod: pod(), roleArn: ROLE }).catch((e: unknown) => e)) as ImdsError;
    expect(err.detail).toBe('AssumeRole: NetworkError');
  });

  it('refuses an answer without complete credentials', async () => {
    const { issuer } = setup({}, async () => ({ Credentials: { AccessKeyId: 'A' } }));
    const err = (await issuer.issue({ pod: pod(), roleArn: ROLE }).catch((e: unknown) => e)) as ImdsError;
    expect(err.detail).toContain('incomplete');
  });
});

describe('regionalStsEndpoint', () => {
  it.each([
    ['us-east-1', 'https://sts.us-east-1.amazonaws.com'],
    ['cn-north-1', 'https://sts.cn-north-1.amazonaws.com.cn'],
  ])('%s → %s', (r, want) => expect(regionalStsEndpoint(r)).toBe(want));
});
