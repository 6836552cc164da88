import { describe, expect, it } from 'vitest';
import { accountOf, credentialsBody, iamInfoBody, imdsTime } from '../../../src/imds/format.js';

const TS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
const creds = {
  accessKeyId: 'ASIAEXAMPLE',
  secretAccessKey: 'secret/key+x',
  sessionToken: 'tok"en',
  expiration: new Date('2026-11-26T04:41:27.231Z'),
  lastUpdated: new Date('2026-11-26T03:41:27.999Z'),
};

describe('IMDS formats', () => {
  it('formats timestamps in whole UTC seconds, rounded down (§13 #25, #58)', () => {
    expect(imdsTime(new Date('2026-11-26T04:41:27.999Z'))).toBe('2026-11-26T04:41:27Z');
  });

  it('writes credential JSON in the IMDS layout with exactly the seven string fields (§13 #23-25)', () => {
    const body = credentialsBody(creds);
    expect(body).toBe(
      [
        '{',
        '  "Code" : "Success",',
        '  "LastUpdated" : "2026-11-26T03:41:27Z",',
        '  "Type" : "AWS-HMAC",',
        '  "AccessKeyId" : "ASIAEXAMPLE",',
        '  "SecretAccessKey" : "secret/key+x",',
        '  "Token" : "tok\\"en",',
        '  "Expiration" : "2026-11-26T04:41:27Z"',
        '}',
      ].join('\n'),
    );
    const doc = JSON.parse(body) as Record<string, string>;
    expect(Object.keys(doc).sort()).toEqual(
      ['AccessKeyId', 'Code', 'Expiration', 'LastUpdated', 'SecretAccessKey', 'Token', 'Type'].sort(),
    );
    expect(doc.Expiration).toMatch(TS);
  });

  it('adds AccountId for the extended variant', () => {
    const doc = JSON.parse(credentialsBody(creds, { accountId: '123456789012' })) as Record<string, string>;
    expect(doc.AccountId).toBe('123456789012');
  });

  it('synthesizes iam/info naming the pod role, never another profile (§13 #34)', () => {
    const roleArn = 'arn:aws:iam::123456789012:role/team/app-role';
    const doc = JSON.parse(iamInfoBody(roleArn, new Date('2026-01-01T00:00:00.5Z'))) as Record<
      string,
      string
    >;
    expect(doc).toEqual({
      Code: 'Success',
      LastUpdated: '2026-01-01T00:00:00Z',
      InstanceProfileArn: 'arn:aws:iam::123456789012:instance-profile/app-role',
      InstanceProfileId: expect.stringMatching(/^AIPA[A-Z0-9]{17}$/),
    });
    expect(JSON.parse(iamInfoBody(roleArn, new Date(0))).InstanceProfileId).toBe(doc.InstanceProfileId);
  });

  it('reads the account of a role ARN', () => {
    expect(accountOf('arn:aws-cn:iam::210987654321:role/x')).toBe('210987654321');
    expect(accountOf('not-an-arn')).toBeUndefined();
  });
});
