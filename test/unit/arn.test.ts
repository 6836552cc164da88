// One role-ARN rule everywhere (src/arn.ts): the flags, the identity file, the decision and STS agree.
import { describe, expect, it } from 'vitest';
import { accountOf, baseRoleArnFor, checkBaseRoleArn, checkRoleArn, toRoleArn } from '../../src/arn.js';
import * as v from 'valibot';
import { loadConfig, roleArnSchema } from '../../src/config.js';
import { checkRoleArn as stsCheck } from '../../src/credentials/sts-limits.js';

const ROLE_ARNS: [string, boolean][] = [
  ['arn:aws:iam::123456789012:role/app', true],
  ['arn:aws:iam::123456789012:role/team/app', true],
  ['arn:aws-cn:iam::123456789012:role/app', true],
  ['arn:aws-us-gov:iam::123456789012:role/a/b/c+=,.@-_', true],
  [`arn:aws:iam::123456789012:role/${'n'.repeat(64)}`, true],
  [`arn:aws:iam::123456789012:role/${'n'.repeat(65)}`, false], // name > 64: STS refuses
  ['arn:aws:iam::123456789012:role/app/', false], // a base, not a role
  ['arn:aws:iam::123456789012:role//app', false],
  ['arn:aws:iam::12345678901:role/app', false],
  ['arn:aws:iam::123456789012:user/app', false],
  ['arn:aws:sts::123456789012:assumed-role/app/x', false],
  ['arn:azure:iam::123456789012:role/app', false],
  ['app', false],
  ['', false],
];

describe('role ARNs', () => {
  it.each(ROLE_ARNS)('%s → %s, the same for the flags, the identity file schema and STS', (arn, ok) => {
    expect(checkRoleArn(arn) === undefined).toBe(ok);
    expect(stsCheck(arn) === undefined).toBe(ok);
    expect(v.safeParse(roleArnSchema, arn).success).toBe(ok); // the identity file's roleArn
    const flag = () =>
      loadConfig(['--identity-file=/x', '--default-role', arn], { IMDSGATE_MANAGE_RULES: 'false' });
    if (arn.startsWith('arn:')) {
      if (ok) expect(flag).not.toThrow();
      else expect(flag).toThrow(/--default-role/);
    }
  });

  it.each([
    ['arn:aws:iam::123456789012:role/', true],
    ['arn:aws:iam::123456789012:role/team/', true],
    ['arn:aws:iam::123456789012:role/app', false],
    ['arn:aws:iam::1:role/', false],
  ])('base %s → %s', (base, ok) => {
    expect(checkBaseRoleArn(base) === undefined).toBe(ok);
  });

  it.each([
    [
      'app',
      'arn:aws:iam::1:role/'.replace('1', '123456789012'),
      { arn: 'arn:aws:iam::123456789012:role/app' },
    ],
    ['team/app', 'arn:aws:iam::123456789012:role/', { arn: 'arn:aws:iam::123456789012:role/team/app' }],
    ['app', undefined, { problem: 'role name "app" needs --base-role-arn (account unknown)' }],
    ['bad name!', 'arn:aws:iam::123456789012:role/', { problem: 'not a role name or ARN: "bad name!"' }],
    ['arn:aws:iam::123456789012:role/x', undefined, { arn: 'arn:aws:iam::123456789012:role/x' }],
    [
      'arn:aws:iam::123456789012:role/',
      undefined,
      { problem: expect.stringMatching(/^not an IAM role ARN/) },
    ],
  ])('toRoleArn(%s, %s)', (value, base, want) => {
    expect(toRoleArn(value, base)).toEqual(want);
  });

  it.each([
    ['eu-west-1', 'arn:aws:iam::123456789012:role/'],
    ['cn-north-1', 'arn:aws-cn:iam::123456789012:role/'],
    ['us-gov-west-1', 'arn:aws-us-gov:iam::123456789012:role/'],
    ['us-iso-east-1', 'arn:aws-iso:iam::123456789012:role/'],
    ['us-isob-east-1', 'arn:aws-iso-b:iam::123456789012:role/'],
  ])('base for region %s', (region, base) => {
    expect(baseRoleArnFor('123456789012', region)).toBe(base);
    expect(checkBaseRoleArn(base)).toBeUndefined();
    expect(accountOf(`${base}x`)).toBe('123456789012');
  });
});
