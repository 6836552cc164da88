import { describe, expect, it } from 'vitest';
import { buildDecisionConfig } from '../../../src/roles/decision-config.js';

const flags = { requireNamespaceAllow: false, namespaceRestrictionFormat: 'glob' as const };
const doc = (accountId: string, region = 'eu-west-1') => ({
  identityDocument: async () => ({ accountId, region }),
});

describe('buildDecisionConfig (agent and explain)', () => {
  it('--base-role-arn wins; the source is not asked', async () => {
    const asked: string[] = [];
    const src = { identityDocument: async () => (asked.push('x'), { accountId: '1', region: 'x' }) };
    expect(
      await buildDecisionConfig({ ...flags, baseRoleArn: 'arn:aws:iam::123456789012:role/' }, src),
    ).toEqual({
      ...flags,
      baseRoleArn: 'arn:aws:iam::123456789012:role/',
    });
    expect(asked).toEqual([]);
  });

  it.each([
    ['123456789012', 'cn-north-1', { baseRoleArn: 'arn:aws-cn:iam::123456789012:role/' }, []],
    [
      '0123456789',
      'us-east-1',
      {},
      ['identity document: not arn:PARTITION:iam::ACCOUNT:role/[path/]: "arn:aws:iam::0123456789:role/"'],
    ],
  ])('account %s in %s', async (account, region, want, problems) => {
    const heard: string[] = [];
    const cfg = await buildDecisionConfig(flags, doc(account, region), (e) => heard.push(e.message));
    expect(cfg).toEqual({ ...flags, ...want });
    expect(heard).toEqual(problems);
  });

  it('an unreachable source: no base, the reason reported; no source: no base', async () => {
    const heard: string[] = [];
    const down = { identityDocument: () => Promise.reject(new Error('connect ECONNREFUSED')) };
    expect(await buildDecisionConfig(flags, down, (e) => heard.push(e.message))).toEqual(flags);
    expect(heard).toEqual(['connect ECONNREFUSED']);
    expect(await buildDecisionConfig({ ...flags, defaultRole: 'web', externalId: 'x1' }, undefined)).toEqual({
      ...flags,
      defaultRole: 'web',
      externalId: 'x1',
    });
  });
});
