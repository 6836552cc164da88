// Smoke test of moto as the STS endpoint: @aws-sdk/client-sts assumes a role on loopback.
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { describe, expect, it } from 'vitest';
import { testEnv } from '../../env/index.js';

const sts = (credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }) =>
  new STSClient({ endpoint: testEnv().sts.endpoint, region: 'us-east-1', credentials });

describe('moto STS', () => {
  it('returns credentials through AssumeRole that then identify as the assumed role', async () => {
    const out = await sts({ accessKeyId: 'AKIDNODE', secretAccessKey: 'node-secret' }).send(
      new AssumeRoleCommand({
        RoleArn: 'arn:aws:iam::123456789012:role/smoke',
        RoleSessionName: 'imdsgate-smoke',
        DurationSeconds: 900,
      }),
    );
    const c = out.Credentials;
    expect(c?.AccessKeyId).toMatch(/^ASIA/);
    expect(c?.SecretAccessKey).toBeTruthy();
    expect(c?.SessionToken).toBeTruthy();
    expect(c?.Expiration?.getTime()).toBeGreaterThan(Date.now());
    const who = await sts({
      accessKeyId: c?.AccessKeyId ?? '',
      secretAccessKey: c?.SecretAccessKey ?? '',
      sessionToken: c?.SessionToken ?? '',
    }).send(new GetCallerIdentityCommand({}));
    expect(who.Arn).toBe('arn:aws:sts::123456789012:assumed-role/smoke/imdsgate-smoke');
  });
});
