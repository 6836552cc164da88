// The IAM paths the agent answers itself, for the calling pod only, under every version prefix and in the
// `-extended` variant (imds-protocol.md §5, §13 #21-#38). Nothing here ever goes upstream: a pod with no
// identity or no allowed role gets 404, never the node's role.
import { ImdsError } from '../errors.js';
import { TEXT_PLAIN, accountOf, credentialsBody, iamInfoBody } from '../imds/format.js';
import type { PathClass } from '../imds/paths.js';
import type { Credentials } from '../credentials/types.js';
import type { PodLookupResult } from '../pods/types.js';
import type { RoleDecision } from '../roles/types.js';
import type { RequestContext } from './pipeline.js';
import type { Answer, AppDeps } from './types.js';

/** Served credentials keep at least 25 minutes, so botocore never enters its expiry extension (§13 #26). */
export const MIN_SERVED_VALIDITY_MS = 1500 * 1000;

export interface DecisionLog {
  readonly namespace?: string;
  readonly pod?: string;
  readonly serviceAccount?: string;
  readonly role?: string;
  readonly outcome: 'allow' | 'deny';
  readonly decisionReason: string;
  readonly detail?: string;
}

type IamClass = Extract<
  PathClass,
  { kind: 'credentials-list' | 'credentials-role' | 'iam-list' | 'iam-info' }
>;

export async function answerIam(
  deps: AppDeps,
  cls: IamClass,
  lookup: PodLookupResult,
  ctx: RequestContext,
): Promise<Answer> {
  const decision = await decide(deps, lookup, ctx);
  if (!decision.allow) {
    throw new ImdsError(decision.reason === 'pod_unknown' ? 'POD_UNKNOWN' : 'ROLE_DENIED', decision.reason);
  }
  switch (cls.kind) {
    case 'credentials-list':
      // Exactly the role name: botocore pastes the body into the next URL (§0.3, §13 #21).
      return text(decision.roleName);
    case 'iam-list':
      return text('info\nsecurity-credentials/');
    case 'iam-info':
      return text(iamInfoBody(decision.roleArn, new Date(deps.clock())));
    case 'credentials-role':
      if (cls.role !== decision.roleName) throw new ImdsError('ROLE_MISMATCH', 'role name differs');
      return credentials(deps, lookup, decision, cls.extended);
  }
}

async function credentials(
  deps: AppDeps,
  lookup: PodLookupResult,
  decision: Extract<RoleDecision, { allow: true }>,
  extended: boolean,
): Promise<Answer> {
  if (lookup.kind !== 'found') throw new ImdsError('POD_UNKNOWN');
  const creds = await deps.credentialIssuer.issue({
    pod: lookup.pod,
    roleArn: decision.roleArn,
    ...(decision.externalId !== undefined ? { externalId: decision.externalId } : {}),
  });
  if (creds.expiration.getTime() - deps.clock() < MIN_SERVED_VALIDITY_MS) {
    throw new ImdsError('CREDENTIALS_UNAVAILABLE', 'issuer returned credentials with < 25 min left');
  }
  const accountId = extended ? (creds.accountId ?? accountOf(decision.roleArn)) : undefined;
  if (accountId !== undefined) return text(credentialsBody(creds, { accountId }));
  // The cache hands out the same object until it refreshes: format it once.
  let body = BODIES.get(creds);
  if (body === undefined) BODIES.set(creds, (body = credentialsBody(creds)));
  return text(body);
}

const BODIES = new WeakMap<Credentials, string>();

async function decide(deps: AppDeps, lookup: PodLookupResult, ctx: RequestContext): Promise<RoleDecision> {
  if (lookup.kind === 'conflict') deps.metrics.podIpConflicts.inc();
  const decision: RoleDecision =
    lookup.kind === 'found'
      ? await deps.roleResolver.resolve(lookup.pod)
      : {
          allow: false,
          reason: lookup.kind === 'conflict' ? 'pod_ip_conflict' : 'pod_unknown',
          detail: 'no pod for the source address',
        };
  const pod = lookup.kind === 'found' ? lookup.pod : undefined;
  const outcome = decision.allow ? 'allow' : 'deny';
  const reason = decision.allow ? decision.source : decision.reason;
  deps.metrics.decisions.inc({ outcome, reason, pod_namespace: pod?.namespace ?? '' });
  ctx.decision = {
    ...(pod ? { namespace: pod.namespace, pod: pod.name, serviceAccount: pod.serviceAccount } : {}),
    ...(decision.allow ? { role: decision.roleArn } : { detail: decision.detail }),
    outcome,
    decisionReason: reason,
  };
  return decision;
}

const text = (body: string): Answer => ({ status: 200, contentType: TEXT_PLAIN, body });
