import type { AssumeRoleWithWebIdentityCommand } from '@aws-sdk/client-sts';
import { describe, expect, it } from 'vitest';
import { createWebIdentityIssuer } from '../../../src/credentials/web-identity.js';
import { ROLE, deps, pod } from './helpers.js';

function setup(tokenFor: () => Promise<string> = async () => 'header.payload.sig') {
  const d = deps();
  const calls: AssumeRoleWithWebIdentityCommand[] = [];
  const issuer = createWebIdentityIssuer({
    region: 'us-east-1',
    durationSeconds: 7200,
    tokenFor,
    ...d,
    send: async (cmd) => {
      calls.push(cmd as AssumeRoleWithWebIdentityCommand);
      return {
        Credentials: {
          AccessKeyId: 'ASIAW',
          SecretAccessKey: 's',
          SessionToken: 't',
          Expiration: new Date(d.clock() + 7200_000),
        },
      };
    },
  });
  return { issuer, calls, d };
}

describe('createWebIdentityIssuer', () => {
  it('sends the service-account token with the derived session name (durations above 1 h are fine)', async () => {
    const { issuer, calls } = setup();
    const c = await issuer.issue({ pod: pod(), roleArn: ROLE });
    expect(c.accessKeyId).toBe('ASIAW');
    expect(calls[0]?.input).toEqual({
      RoleArn: ROLE,
      RoleSessionName: 'imdsgate.team-a.web-0',
      DurationSeconds: 7200,
      WebIdentityToken: 'header.payload.sig',
    });
  });

  it.each([
    ['an external ID', { externalId: 'ext-1' }, 'ExternalId'],
    ['an invalid role', { roleArn: 'arn:aws:iam::1:role/x' }, 'not an IAM role ARN'],
  ])('refuses %s before asking for a token', async (_n, over, detail) => {
    let asked = false;
    const { issuer, calls } = setup(async () => ((asked = true), 'abcd'));
    await expect(issuer.issue({ pod: pod(), roleArn: ROLE, ...over })).rejects.toMatchObject({
      code: 'CREDENTIALS_UNAVAILABLE',
      detail: expect.stringContaining(detail),
    });
    expect(asked).toBe(false);
    expect(calls).toHaveLength(0);
  });

  it('maps a TokenRequest failure to CREDENTIALS_UNAVAILABLE', async () => {
    const { issuer, d } = setup(() => Promise.reject(new Error('forbidden')));
    await expect(issuer.issue({ pod: pod(), roleArn: ROLE })).rejects.toMatchObject({
      code: 'CREDENTIALS_UNAVAILABLE',
    });
    expect(await d.metric('imdsgate_sts_requests_total', { outcome: 'TokenRequestFailed' })).toBe(1);
  });

  it('rejects DurationSeconds outside 900-43200 at construction', () => {
    expect(() =>
      createWebIdentityIssuer({
        region: 'us-east-1',
        durationSeconds: 50_000,
        tokenFor: async () => 'x',
        ...deps(),
      }),
    ).toThrow(/DurationSeconds/);
  });
});
