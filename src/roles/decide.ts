// The role decision: pod, service-account and namespace annotations plus configuration → RoleDecision.
// Pure and synchronous; docs/roles.md holds the precedence table this file implements, row by row.
import { toRoleArn } from '../arn.js';
import { checkExternalId } from '../credentials/sts-limits.js';
import type { RoleDecision } from './types.js';
import { compilePattern, patternAllows, type PatternFormat, type RolePattern } from './patterns.js';

export const ANNOTATIONS = {
  /** IRSA (amazon-eks-pod-identity-webhook), on the service account: the primary mapping. */
  saRole: 'eks.amazonaws.com/role-arn',
  /** kube2iam / kiam, on the pod: a role name or ARN. */
  podRole: 'iam.amazonaws.com/role',
  podExternalId: 'iam.amazonaws.com/external-id',
  /** kube2iam, on the namespace: JSON array of globs or regexps (per --namespace-restriction-format). */
  nsAllowedRoles: 'iam.amazonaws.com/allowed-roles',
  /** kiam, on the namespace: one regular expression, anchored. */
  nsPermitted: 'iam.amazonaws.com/permitted',
  /** Ours, on the namespace: allow|deny overrides --imdsv1. */
  nsImdsv1: 'imdsgate.io/imdsv1',
} as const;

export interface DecisionConfig {
  /** --base-role-arn, or arn:<partition>:iam::<account>:role/ discovered from the identity document. */
  readonly baseRoleArn?: string;
  readonly defaultRole?: string;
  readonly requireNamespaceAllow: boolean;
  readonly namespaceRestrictionFormat: PatternFormat;
  /** --external-id: used when the pod names none. */
  readonly externalId?: string;
}

type Annotations = Readonly<Record<string, string>>;

export interface DecisionInput {
  readonly pod: { readonly namespace: string; readonly name: string; readonly annotations: Annotations };
  /** undefined: the pod's service account does not exist (it then contributes no annotation). */
  readonly serviceAccount: { readonly annotations: Annotations } | undefined;
  /** undefined: the namespace is not known (fail closed). */
  readonly namespace: { readonly annotations: Annotations } | undefined;
  readonly config: DecisionConfig;
}

export interface Explained {
  readonly decision: RoleDecision;
  /** One line per rule applied, in order: what `imdsgate explain` prints. */
  readonly steps: readonly string[];
}

const deny = (reason: Extract<RoleDecision, { allow: false }>['reason'], detail: string): RoleDecision => ({
  allow: false,
  reason,
  detail,
});

export { toRoleArn };

interface Chosen {
  readonly value: string;
  readonly source: 'service-account' | 'pod-annotation' | 'default';
}

function chooseRole(input: DecisionInput, steps: string[]): Chosen | RoleDecision {
  const sa = input.serviceAccount?.annotations[ANNOTATIONS.saRole];
  const pod = input.pod.annotations[ANNOTATIONS.podRole];
  steps.push(`service account ${ANNOTATIONS.saRole}: ${sa ?? '(none)'}`);
  steps.push(`pod ${ANNOTATIONS.podRole}: ${pod ?? '(none)'}`);
  if (sa === '' || pod === '') return deny('invalid_annotation', 'role annotation is empty');
  // IRSA's webhook and the SDKs take only a full ARN here; a bare name would be a misconfiguration.
  if (sa !== undefined && !sa.startsWith('arn:')) {
    return deny(
      'invalid_role',
      `service-account ${ANNOTATIONS.saRole} must be a role ARN, got "${sa.slice(0, 200)}"`,
    );
  }
  if (sa !== undefined && pod !== undefined) {
    const a = toRoleArn(sa, input.config.baseRoleArn);
    const b = toRoleArn(pod, input.config.baseRoleArn);
    if ('problem' in a) return deny('invalid_role', `service-account: ${a.problem}`);
    if ('problem' in b) return deny('invalid_role', `pod-annotation: ${b.problem}`);
    if (a.arn !== b.arn) {
      return deny(
        'invalid_annotation',
        `pod annotation ${ANNOTATIONS.podRole}="${pod}" and service account ${ANNOTATIONS.saRole}="${sa}" disagree`,
      );
    }
  }
  if (sa !== undefined) return { value: sa, source: 'service-account' };
  if (pod !== undefined) return { value: pod, source: 'pod-annotation' };
  const def = input.config.defaultRole;
  steps.push(`default role (--default-role): ${def ?? '(none)'}`);
  if (def !== undefined) return { value: def, source: 'default' };
  return deny('no_role', 'no role annotation on pod or service account, and no default role');
}

function parseAllowedRoles(raw: string, format: PatternFormat): RolePattern[] | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return `${ANNOTATIONS.nsAllowedRoles} is not JSON`;
  }
  if (!Array.isArray(parsed) || !parsed.every((e): e is string => typeof e === 'string' && e !== '')) {
    return `${ANNOTATIONS.nsAllowedRoles} must be a JSON array of non-empty strings`;
  }
  try {
    return parsed.map((e) => compilePattern(e, format));
  } catch (err) {
    return `${ANNOTATIONS.nsAllowedRoles}: ${(err as Error).message}`;
  }
}

/** Every namespace annotation present must allow the role; none present → allowed unless required. */
function namespaceAllows(roleArn: string, input: DecisionInput, steps: string[]): RoleDecision | undefined {
  const ns = input.namespace;
  if (ns === undefined) return deny('namespace_forbids', `namespace ${input.pod.namespace} is not known`);
  const { baseRoleArn: base, namespaceRestrictionFormat: format } = input.config;
  const allowed = ns.annotations[ANNOTATIONS.nsAllowedRoles];
  const permitted = ns.annotations[ANNOTATIONS.nsPermitted];
  steps.push(`namespace ${ANNOTATIONS.nsAllowedRoles} (${format}): ${allowed ?? '(none)'}`);
  steps.push(`namespace ${ANNOTATIONS.nsPermitted} (regexp): ${permitted ?? '(none)'}`);
  if (allowed === undefined && permitted === undefined) {
    if (!input.config.requireNamespaceAllow) return undefined;
    return deny(
      'namespace_requires_allow',
      `namespace ${input.pod.namespace} allows no role (--require-namespace-allow)`,
    );
  }
  if (allowed !== undefined) {
    const patterns = parseAllowedRoles(allowed, format);
    if (typeof patterns === 'string') return deny('invalid_annotation', patterns);
    if (!patterns.some((p) => patternAllows(p, roleArn, base))) {
      return deny('namespace_forbids', `${ANNOTATIONS.nsAllowedRoles} does not allow ${roleArn}`);
    }
  }
  if (permitted !== undefined) {
    let p: RolePattern;
    try {
      p = compilePattern(permitted, 'regexp');
    } catch (err) {
      return deny('invalid_annotation', `${ANNOTATIONS.nsPermitted}: ${(err as Error).message}`);
    }
    if (!patternAllows(p, roleArn, base)) {
      return deny('namespace_forbids', `${ANNOTATIONS.nsPermitted} does not allow ${roleArn}`);
    }
  }
  return undefined;
}

export function explainRole(input: DecisionInput): Explained {
  const steps: string[] = [];
  const done = (decision: RoleDecision): Explained => {
    steps.push(
      decision.allow
        ? `allow ${decision.roleArn} (${decision.source})`
        : `deny ${decision.reason}: ${decision.detail}`,
    );
    return { decision, steps };
  };
  const chosen = chooseRole(input, steps);
  if ('allow' in chosen) return done(chosen);
  const resolved = toRoleArn(chosen.value, input.config.baseRoleArn);
  if ('problem' in resolved) return done(deny('invalid_role', `${chosen.source}: ${resolved.problem}`));
  steps.push(`role ${chosen.value} from ${chosen.source} → ${resolved.arn}`);
  const nsDenial = namespaceAllows(resolved.arn, input, steps);
  if (nsDenial !== undefined) return done(nsDenial);
  const externalId = input.pod.annotations[ANNOTATIONS.podExternalId] ?? input.config.externalId;
  steps.push(
    `external ID (pod ${ANNOTATIONS.podExternalId}, else --external-id): ${externalId === undefined ? '(none)' : 'set'}`,
  );
  if (externalId !== undefined && checkExternalId(externalId) !== undefined) {
    return done(deny('invalid_external_id', checkExternalId(externalId) ?? ''));
  }
  return done({
    allow: true,
    roleArn: resolved.arn,
    roleName: resolved.arn.slice(resolved.arn.lastIndexOf('/') + 1),
    ...(externalId !== undefined ? { externalId } : {}),
    source: chosen.source,
  });
}

export function decideRole(input: DecisionInput): RoleDecision {
  return explainRole(input).decision;
}

/** Namespace override of --imdsv1; an unreadable value denies (fail closed) and says why. */
export function imdsv1For(
  nsAnnotations: Annotations | undefined,
  fallback: 'allow' | 'deny',
): { policy: 'allow' | 'deny'; problem?: string } {
  const v = nsAnnotations?.[ANNOTATIONS.nsImdsv1];
  if (v === undefined) return { policy: fallback };
  if (v === 'allow' || v === 'deny') return { policy: v };
  return {
    policy: 'deny',
    problem: `${ANNOTATIONS.nsImdsv1} must be allow or deny, got "${v.slice(0, 50)}"`,
  };
}
