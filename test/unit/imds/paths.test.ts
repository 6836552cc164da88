import { describe, expect, it } from 'vitest';
import { compileGlob, createPathPolicy } from '../../../src/imds/paths.js';

const policy = createPathPolicy();

describe('path classification', () => {
  const versions = ['latest', '1.0', '2007-01-19', '2012-01-12', '2021-03-23'];
  it.each(
    versions.flatMap((v) => [
      `/${v}/meta-data/iam/security-credentials`,
      `/${v}/meta-data/iam/security-credentials/`,
    ]),
  )('credentials listing under any version: %s', (p) =>
    expect(policy.classify(p)).toEqual({ kind: 'credentials-list', extended: false }),
  );

  it.each(versions)('role path and extended paths under /%s', (v) => {
    expect(policy.classify(`/${v}/meta-data/iam/security-credentials/MyRole`)).toEqual({
      kind: 'credentials-role',
      extended: false,
      role: 'MyRole',
    });
    expect(policy.classify(`/${v}/meta-data/iam/security-credentials-extended/`)).toEqual({
      kind: 'credentials-list',
      extended: true,
    });
    expect(policy.classify(`/${v}/meta-data/iam/security-credentials-extended/r`)).toEqual({
      kind: 'credentials-role',
      extended: true,
      role: 'r',
    });
  });

  it.each([
    ['/', { kind: 'version-listing' }],
    ['/latest', { kind: 'version-listing' }],
    ['/latest/', { kind: 'version-listing' }],
    ['/latest/api/token', { kind: 'token', versioned: false }],
    ['/2021-03-23/api/token', { kind: 'token', versioned: true }],
    ['/latest/api/token/', { kind: 'concealed', reason: 'hard_deny' }],
    ['/latest/api/other', { kind: 'concealed', reason: 'hard_deny' }],
    ['/latest/API/token', { kind: 'refused', reason: 'api spelling' }],
    ['/latest/api/TOKEN', { kind: 'refused', reason: 'token spelling' }],
    ['/latest/meta-data/iam', { kind: 'iam-list' }],
    ['/latest/meta-data/iam/', { kind: 'iam-list' }],
    ['/latest/meta-data/iam/info', { kind: 'iam-info' }],
    ['/latest/meta-data/iam/info/', { kind: 'concealed', reason: 'iam_unknown' }],
    ['/latest/meta-data/iam/Info', { kind: 'refused', reason: 'iam/info spelling' }],
    ['/latest/meta-data/iam/other', { kind: 'concealed', reason: 'iam_unknown' }],
    ['/latest/meta-data/iam/security-credentials/r/x', { kind: 'concealed', reason: 'iam_unknown' }],
    ['/latest/meta-data/iam/security-credentials/r/', { kind: 'concealed', reason: 'iam_unknown' }],
    ['/latest/meta-data/IAM/security-credentials/', { kind: 'refused', reason: 'iam spelling' }],
    ['/latest/Meta-Data/iam/security-credentials/', { kind: 'refused', reason: 'iam spelling' }],
    [
      '/latest/meta-data/iam/Security-Credentials/',
      { kind: 'refused', reason: 'security-credentials spelling' },
    ],
    [
      '/latest/meta-data/iam/SECURITY-CREDENTIALS-EXTENDED/r',
      { kind: 'refused', reason: 'security-credentials spelling' },
    ],
    ['/LATEST/meta-data/iam/security-credentials/', { kind: 'concealed', reason: 'unknown_version' }],
    ['/v1/meta-data/instance-id', { kind: 'concealed', reason: 'unknown_version' }],
    ['/20210323/meta-data/instance-id', { kind: 'concealed', reason: 'unknown_version' }],
    [
      '/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance',
      { kind: 'concealed', reason: 'hard_deny' },
    ],
    ['/latest/meta-data/Identity-Credentials/ec2/info', { kind: 'concealed', reason: 'hard_deny' }],
    ['/latest/meta-data/identity-credentials', { kind: 'concealed', reason: 'hard_deny' }],
    ['/latest/user-data', { kind: 'concealed', reason: 'not_allowed' }],
    ['/latest/user-data/', { kind: 'concealed', reason: 'not_allowed' }],
    ['/latest/meta-data/tags/instance/Name', { kind: 'concealed', reason: 'not_allowed' }],
    ['/latest/meta-data/public-keys/', { kind: 'concealed', reason: 'not_allowed' }],
    ['/latest/meta-data/nope', { kind: 'concealed', reason: 'not_allowed' }],
    ['/latest/meta-data/Instance-Id', { kind: 'concealed', reason: 'not_allowed' }],
    ['/latest/meta-data', { kind: 'forward' }],
    ['/latest/meta-data/', { kind: 'forward' }],
    ['/latest/meta-data/instance-id', { kind: 'forward' }],
    ['/1.0/meta-data/instance-id', { kind: 'forward' }],
    ['/latest/meta-data/placement/region', { kind: 'forward' }],
    ['/latest/meta-data/placement/', { kind: 'forward' }],
    ['/latest/meta-data/placement', { kind: 'forward' }],
    ['/latest/meta-data/network/interfaces/macs/0e:49/subnet-id', { kind: 'forward' }],
    ['/latest/meta-data/services/domain', { kind: 'forward' }],
    ['/latest/meta-data/spot/instance-action', { kind: 'forward' }],
    ['/latest/dynamic/instance-identity/document', { kind: 'forward' }],
    ['/latest/dynamic/instance-identity/signature', { kind: 'forward' }],
    ['/latest/dynamic/instance-identity/pkcs7', { kind: 'forward' }],
    ['/latest/dynamic/instance-identity/rsa2048', { kind: 'forward' }],
    ['/latest/dynamic/instance-identity/other', { kind: 'concealed', reason: 'not_allowed' }],
    ['/latest/dynamic/', { kind: 'forward' }],
  ])('%s', (p, want) => {
    expect(policy.classify(p)).toEqual(want);
  });

  it('allowPath adds paths; denyPath wins (case-insensitively); hard denies cannot be allowed', () => {
    const p = createPathPolicy({
      allow: ['user-data', 'meta-data/tags/**', 'meta-data/**', '**'],
      deny: ['meta-data/tags/instance/secret*', 'META-DATA/PLACEMENT/**'],
    });
    expect(p.classify('/latest/user-data')).toEqual({ kind: 'forward' });
    expect(p.classify('/latest/meta-data/tags/instance/Name')).toEqual({ kind: 'forward' });
    expect(p.classify('/latest/meta-data/tags/instance/secret-x')).toEqual({
      kind: 'concealed',
      reason: 'deny_path',
    });
    expect(p.classify('/latest/meta-data/placement/region')).toEqual({
      kind: 'concealed',
      reason: 'deny_path',
    });
    expect(p.classify('/latest/meta-data/identity-credentials/ec2/info')).toEqual({
      kind: 'concealed',
      reason: 'hard_deny',
    });
    expect(p.classify('/latest/meta-data/IDENTITY-credentials/ec2/info')).toEqual({
      kind: 'concealed',
      reason: 'hard_deny',
    });
    // Even with allow '**', every spelling of an IAM path is intercepted or refused, never forwarded.
    expect(p.classify('/latest/meta-data/IAM/info')).toEqual({ kind: 'refused', reason: 'iam spelling' });
    expect(p.classify('/latest/meta-data/iam/anything')).toEqual({
      kind: 'concealed',
      reason: 'iam_unknown',
    });
  });
});

describe('compileGlob', () => {
  it.each([
    ['meta-data/placement/**', 'meta-data/placement', true],
    ['meta-data/placement/**', 'meta-data/placement/region', true],
    ['meta-data/placement/**', 'meta-data/placement/a/b', true],
    ['meta-data/placement/**', 'meta-data/placements', false],
    ['meta-data/*', 'meta-data/x', true],
    ['meta-data/*', 'meta-data/x/y', false],
    ['meta-data/a.b', 'meta-data/aXb', false],
    ['/meta-data/x/', 'meta-data/x', true],
  ])('%s ~ %s = %s', (g, p, want) => {
    expect(compileGlob(g, false).test(p)).toBe(want);
  });
});
