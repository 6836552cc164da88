import { describe, expect, it } from 'vitest';
import { decideRole, explainRole, imdsv1For, type DecisionInput } from '../../../src/roles/decide.js';
import type { RoleDecision } from '../../../src/roles/types.js';

const BASE = 'arn:aws:iam::123456789012:role/';
const APP = `${BASE}app`;
const OTHER_ACCOUNT = 'arn:aws:iam::999999999999:role/app';

interface Row {
  name: string;
  pod?: Record<string, string>;
  sa?: Record<string, string> | null;
  ns?: Record<string, string> | null;
  cfg?: Partial<DecisionInput['config']>;
  want: Partial<RoleDecision> & { allow: boolean };
}

const R = 'iam.amazonaws.com/role';
const SA = 'eks.amazonaws.com/role-arn';
const EXT = 'iam.amazonaws.com/external-id';
const ALLOWED = 'iam.amazonaws.com/allowed-roles';
const PERMITTED = 'iam.amazonaws.com/permitted';

const rows: Row[] = [
  // sources
  {
    name: 'IRSA service-account annotation',
    sa: { [SA]: APP },
    want: { allow: true, roleArn: APP, source: 'service-account', roleName: 'app' },
  },
  {
    name: 'kube2iam pod annotation, bare name + base',
    pod: { [R]: 'app' },
    want: { allow: true, roleArn: APP, source: 'pod-annotation' },
  },
  {
    name: 'pod annotation with a path',
    pod: { [R]: 'team/app' },
    want: { allow: true, roleArn: `${BASE}team/app`, roleName: 'app' },
  },
  {
    name: 'pod annotation, full ARN in another account',
    pod: { [R]: OTHER_ACCOUNT },
    want: { allow: true, roleArn: OTHER_ACCOUNT },
  },
  {
    name: 'pod and SA agree (name vs ARN)',
    pod: { [R]: 'app' },
    sa: { [SA]: APP },
    want: { allow: true, roleArn: APP, source: 'service-account' },
  },
  {
    name: 'pod and SA disagree → deny',
    pod: { [R]: 'admin' },
    sa: { [SA]: APP },
    want: { allow: false, reason: 'invalid_annotation' },
  },
  { name: 'no role anywhere', want: { allow: false, reason: 'no_role' } },
  {
    name: 'default role',
    cfg: { defaultRole: 'fallback' },
    want: { allow: true, roleArn: `${BASE}fallback`, source: 'default' },
  },
  {
    name: 'pod annotation beats default role',
    pod: { [R]: 'app' },
    cfg: { defaultRole: 'fallback' },
    want: { allow: true, roleArn: APP },
  },
  {
    name: 'service account missing: pod annotation still counts',
    pod: { [R]: 'app' },
    sa: null,
    want: { allow: true, roleArn: APP },
  },
  // invalid roles and annotations
  {
    name: 'SA annotation not an ARN',
    sa: { [SA]: 'arn:aws:iam::12:role/x' },
    want: { allow: false, reason: 'invalid_role' },
  },
  { name: 'pod annotation garbage', pod: { [R]: 'a b' }, want: { allow: false, reason: 'invalid_role' } },
  { name: 'pod annotation empty', pod: { [R]: '' }, want: { allow: false, reason: 'invalid_annotation' } },
  {
    name: 'role name with no base ARN',
    pod: { [R]: 'app' },
    cfg: { baseRoleArn: undefined },
    want: { allow: false, reason: 'invalid_role' },
  },
  {
    name: 'both annotations, SA invalid',
    pod: { [R]: 'app' },
    sa: { [SA]: 'nope' },
    want: { allow: false, reason: 'invalid_role' },
  },
  {
    name: 'ARN of a user, not a role',
    pod: { [R]: 'arn:aws:iam::123456789012:user/bob' },
    want: { allow: false, reason: 'invalid_role' },
  },
  // external ID
  {
    name: 'external ID from pod',
    pod: { [R]: 'app', [EXT]: 'ext-1' },
    want: { allow: true, externalId: 'ext-1' },
  },
  {
    name: 'external ID from config',
    pod: { [R]: 'app' },
    cfg: { externalId: 'cfg-id' },
    want: { allow: true, externalId: 'cfg-id' },
  },
  {
    name: 'pod external ID wins over config',
    pod: { [R]: 'app', [EXT]: 'pod-id' },
    cfg: { externalId: 'cfg-id' },
    want: { allow: true, externalId: 'pod-id' },
  },
  {
    name: 'invalid external ID',
    pod: { [R]: 'app', [EXT]: 'x' },
    want: { allow: false, reason: 'invalid_external_id' },
  },
  // namespace: kube2iam allowed-roles (glob)
  { name: 'glob allows by name', pod: { [R]: 'app' }, ns: { [ALLOWED]: '["app"]' }, want: { allow: true } },
  { name: 'glob * allows', pod: { [R]: 'app' }, ns: { [ALLOWED]: '["ap*"]' }, want: { allow: true } },
  {
    name: 'glob full ARN allows',
    pod: { [R]: 'app' },
    ns: { [ALLOWED]: `["${BASE}*"]` },
    want: { allow: true },
  },
  {
    name: 'glob forbids',
    pod: { [R]: 'admin' },
    ns: { [ALLOWED]: '["app-*"]' },
    want: { allow: false, reason: 'namespace_forbids' },
  },
  {
    name: 'glob name never matches another account',
    pod: { [R]: OTHER_ACCOUNT },
    ns: { [ALLOWED]: '["app"]' },
    want: { allow: false, reason: 'namespace_forbids' },
  },
  {
    name: 'glob dot is literal',
    pod: { [R]: 'appx' },
    ns: { [ALLOWED]: '["app."]' },
    want: { allow: false, reason: 'namespace_forbids' },
  },
  {
    name: 'allowed-roles empty array forbids everything',
    pod: { [R]: 'app' },
    ns: { [ALLOWED]: '[]' },
    want: { allow: false, reason: 'namespace_forbids' },
  },
  {
    name: 'allowed-roles bad JSON',
    pod: { [R]: 'app' },
    ns: { [ALLOWED]: '["app"' },
    want: { allow: false, reason: 'invalid_annotation' },
  },
  {
    name: 'allowed-roles not an array',
    pod: { [R]: 'app' },
    ns: { [ALLOWED]: '"app"' },
    want: { allow: false, reason: 'invalid_annotation' },
  },
  {
    name: 'allowed-roles with a number',
    pod: { [R]: 'app' },
    ns: { [ALLOWED]: '["app", 3]' },
    want: { allow: false, reason: 'invalid_annotation' },
  },
  // namespace: allowed-roles (regexp), always anchored
  {
    name: 'regexp allows',
    pod: { [R]: 'app-1' },
    ns: { [ALLOWED]: '["app-\\\\d+"]' },
    cfg: { namespaceRestrictionFormat: 'regexp' },
    want: { allow: true },
  },
  {
    name: 'regexp anchored: no substring match',
    pod: { [R]: 'evil-app-admin' },
    ns: { [ALLOWED]: '["app"]' },
    cfg: { namespaceRestrictionFormat: 'regexp' },
    want: { allow: false, reason: 'namespace_forbids' },
  },
  {
    name: 'regexp alternation stays anchored',
    pod: { [R]: 'b-admin' },
    ns: { [ALLOWED]: '["a|b"]' },
    cfg: { namespaceRestrictionFormat: 'regexp' },
    want: { allow: false, reason: 'namespace_forbids' },
  },
  {
    name: 'regexp invalid',
    pod: { [R]: 'app' },
    ns: { [ALLOWED]: '["app("]' },
    cfg: { namespaceRestrictionFormat: 'regexp' },
    want: { allow: false, reason: 'invalid_annotation' },
  },
  // namespace: kiam permitted
  {
    name: 'kiam permitted allows',
    pod: { [R]: 'app' },
    ns: { [PERMITTED]: 'app|web' },
    want: { allow: true },
  },
  {
    name: 'kiam permitted anchored',
    pod: { [R]: 'app-admin' },
    ns: { [PERMITTED]: 'app' },
    want: { allow: false, reason: 'namespace_forbids' },
  },
  {
    name: 'kiam permitted bad regex',
    pod: { [R]: 'app' },
    ns: { [PERMITTED]: '(' },
    want: { allow: false, reason: 'invalid_annotation' },
  },
  {
    name: 'kiam permitted with full ARN regex',
    sa: { [SA]: APP },
    ns: { [PERMITTED]: 'arn:aws:iam::123456789012:role/.*' },
    want: { allow: true },
  },
  // both namespace annotations: both must allow
  {
    name: 'both allow',
    pod: { [R]: 'app' },
    ns: { [ALLOWED]: '["app"]', [PERMITTED]: 'app' },
    want: { allow: true },
  },
  {
    name: 'allowed-roles allows, permitted forbids',
    pod: { [R]: 'app' },
    ns: { [ALLOWED]: '["app"]', [PERMITTED]: 'web' },
    want: { allow: false, reason: 'namespace_forbids' },
  },
  {
    name: 'permitted allows, allowed-roles malformed',
    pod: { [R]: 'app' },
    ns: { [ALLOWED]: '{', [PERMITTED]: 'app' },
    want: { allow: false, reason: 'invalid_annotation' },
  },
  // cluster-wide requirement and default role
  {
    name: 'require allow, namespace silent',
    pod: { [R]: 'app' },
    cfg: { requireNamespaceAllow: true },
    want: { allow: false, reason: 'namespace_requires_allow' },
  },
  {
    name: 'require allow, namespace allows',
    pod: { [R]: 'app' },
    ns: { [PERMITTED]: 'app' },
    cfg: { requireNamespaceAllow: true },
    want: { allow: true },
  },
  {
    name: 'default role is subject to namespace policy (unlike kube2iam)',
    ns: { [ALLOWED]: '["app"]' },
    cfg: { defaultRole: 'fallback' },
    want: { allow: false, reason: 'namespace_forbids' },
  },
  {
    name: 'default role with require allow',
    cfg: { defaultRole: 'fallback', requireNamespaceAllow: true },
    want: { allow: false, reason: 'namespace_requires_allow' },
  },
  {
    name: 'SA role checked against namespace',
    sa: { [SA]: APP },
    ns: { [ALLOWED]: '["web"]' },
    want: { allow: false, reason: 'namespace_forbids' },
  },
  {
    name: 'namespace unknown fails closed',
    pod: { [R]: 'app' },
    ns: null,
    want: { allow: false, reason: 'namespace_forbids' },
  },
];

function input(r: Row): DecisionInput {
  return {
    pod: { namespace: 'team-a', name: 'web-0', annotations: r.pod ?? {} },
    serviceAccount: r.sa === null ? undefined : { annotations: r.sa ?? {} },
    namespace: r.ns === null ? undefined : { annotations: r.ns ?? {} },
    config: { baseRoleArn: BASE, requireNamespaceAllow: false, namespaceRestrictionFormat: 'glob', ...r.cfg },
  };
}

describe('decideRole', () => {
  it.each(rows)('$name', (r) => {
    expect(decideRole(input(r))).toMatchObject(r.want);
  });

  it('explains every input it looked at', () => {
    const { steps } = explainRole(
      input({ name: '', pod: { [R]: 'app' }, ns: { [PERMITTED]: 'app' }, want: { allow: true } }),
    );
    expect(steps.join('\n')).toContain('iam.amazonaws.com/permitted (regexp): app');
    expect(steps.at(-1)).toBe(`allow ${APP} (pod-annotation)`);
  });
});

describe('imdsv1For', () => {
  it.each([
    [undefined, 'allow', 'allow'],
    [{}, 'deny', 'deny'],
    [{ 'imdsgate.io/imdsv1': 'deny' }, 'allow', 'deny'],
    [{ 'imdsgate.io/imdsv1': 'allow' }, 'deny', 'allow'],
    [{ 'imdsgate.io/imdsv1': 'yes' }, 'allow', 'deny'],
  ] as const)('%o with default %s → %s', (ann, fallback, want) => {
    expect(imdsv1For(ann, fallback).policy).toBe(want);
  });
});
