// The IAM paths the agent answers itself, for the calling pod only, under every version prefix and in the
// `-extended` variant (docs/protocol.md §5, §13 #21-#38). Nothing here ever goes upstream: a pod with no
// identity or no allowed role gets 404, never the node's role.
import { ImdsError } from '../errors.js';
import { TEXT_PLAIN, accountOf, credentialsBody, iamInfoBody } from '../imds/format.js';
import type { PathClass } from '../imds/paths.js';
import type { Credentials } from '../credentials/types.js';
import type { PodIdentity, PodLookupResult } from '../pods/types.js';
import type { RoleDecision } from '../roles/types.js';
import type { Answer, AppDeps } from './types.js';

/** What this module writes of a request's RequestContext (record.ts); owned here, as record.ts imports iam.ts. */
interface DecisionContext {
  decision?: DecisionLog;
}

/** Served credentials keep at least 25 minutes, so botocore never enters its expiry extension (§13 #26). */
export const MIN_SERVED_VALIDITY_MS = 1500 * 1000;

export interface DecisionLog {
  readonly namespace: string | undefined;
  readonly pod: string | undefined;
  readonly serviceAccount: string | undefined;
  readonly role: string | undefined;
  readonly detail: string | undefined;
  readonly outcome: 'allow' | 'deny';
  readonly decisionReason: string;
}

type IamClass = Extract<
  PathClass,
  { kind: 'credentials-list' | 'credentials-role' | 'iam-list' | 'iam-info' }
>;

export async function answerIam(
  deps: AppDeps,
  cls: IamClass,
  lookup: PodLookupResult,
  ctx: DecisionContext,
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

/** Whether the pod may read its IAM paths (for listings: no metric, no decision log line). */
export async function podHasRole(deps: AppDeps, lookup: PodLookupResult): Promise<boolean> {
  if (lookup.kind !== 'found') return false;
  const d = deps.roleResolver.resolve(lookup.pod);
  return (d instanceof Promise ? await d : d).allow;
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
  // The cache hands out the same object until it refreshes: format and encode it once.
  let answer = ANSWERS.get(creds);
  if (answer === undefined) ANSWERS.set(creds, (answer = text(Buffer.from(credentialsBody(creds)))));
  return answer;
}

const ANSWERS = new WeakMap<Credentials, Answer>();

async function decide(deps: AppDeps, lookup: PodLookupResult, ctx: DecisionContext): Promise<RoleDecision> {
  if (lookup.kind === 'conflict') deps.metrics.podIpConflicts.inc();
  let decision: RoleDecision;
  if (lookup.kind === 'found') {
    const d = deps.roleResolver.resolve(lookup.pod);
    // Resolvers answer synchronously from their view; awaiting a plain value would still cost a tick.
    decision = d instanceof Promise ? await d : d;
  } else if (lookup.kind === 'unbound') {
    decision = { allow: false, reason: lookup.reason, detail: 'the sender is not the pod the view names' };
  } else {
    decision = lookup.kind === 'conflict' ? CONFLICT : UNKNOWN;
  }
  const pod = lookup.kind === 'found' ? lookup.pod : undefined;
  const log = decisionLog(pod, decision);
  deps.metrics.decisions.inc({
    outcome: log.outcome,
    reason: log.decisionReason,
    pod_namespace: pod?.namespace ?? '',
  });
  ctx.decision = log;
  return decision;
}

const UNKNOWN: RoleDecision = {
  allow: false,
  reason: 'pod_unknown',
  detail: 'no pod for the source address',
};
const CONFLICT: RoleDecision = {
  allow: false,
  reason: 'pod_ip_conflict',
  detail: 'no pod for the source address',
};

/**
 * The decision's log fields. While a pod's decision stays the same, the same object is handed out again,
 * so the pipeline can keep one pino child per decision with these fields already serialised (a pod asks
 * again and again; only path, status and latency change). Keyed by namespace/name (neither may contain a
 * `/`) and checked field by field, not by object identity: the Kubernetes pod index hands out a fresh
 * PodIdentity per lookup. Bounded: dropped whole when full.
 */
function decisionLog(pod: PodIdentity | undefined, decision: RoleDecision): DecisionLog {
  const outcome = decision.allow ? 'allow' : 'deny';
  const decisionReason = decision.allow ? decision.source : decision.reason;
  const role = decision.allow ? decision.roleArn : undefined;
  const detail = decision.allow ? undefined : decision.detail;
  const key = pod === undefined ? `-${decisionReason}` : `${pod.namespace}/${pod.name}`;
  const last = LAST_LOG.get(key);
  if (
    last !== undefined &&
    last.namespace === pod?.namespace &&
    last.pod === pod?.name &&
    last.serviceAccount === pod?.serviceAccount &&
    last.outcome === outcome &&
    last.decisionReason === decisionReason &&
    last.role === role &&
    last.detail === detail
  ) {
    return last;
  }
  const log: DecisionLog = {
    namespace: pod?.namespace,
    pod: pod?.name,
    serviceAccount: pod?.serviceAccount,
    role,
    detail,
    outcome,
    decisionReason,
  };
  if (LAST_LOG.size >= MAX_DECISION_LOGS) LAST_LOG.clear();
  LAST_LOG.set(key, log);
  return log;
}

/** More than the pods a node can run (110 by default, 250 at most on EKS). */
const MAX_DECISION_LOGS = 2048;
const LAST_LOG = new Map<string, DecisionLog>();

const text = (body: string | Buffer): Answer => ({ status: 200, contentType: TEXT_PLAIN, body });
