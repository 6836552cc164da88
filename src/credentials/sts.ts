// assume-role mode (kube2iam's model): the node's own credentials, fetched from the upstream IMDS by the
// front door and refreshed there, sign sts:AssumeRole for the pod's role. Every parameter is checked
// against the STS bounds before the call (docs/protocol.md §13 items 54-57).
import { AssumeRoleCommand } from '@aws-sdk/client-sts';
import { ImdsError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Clock } from '../pods/types.js';
import { roleSessionName, podSessionTags } from './session.js';
import { callSts, createStsClient, NodeCredentialsError, type StsSend } from './sts-call.js';
import { checkDuration, checkExternalId, checkRoleArn, checkSessionName, checkTags } from './sts-limits.js';
import type { CredentialIssuer, CredentialRequest } from './types.js';

export interface NodeCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

export interface AssumeRoleIssuerOptions {
  readonly region: string;
  /** Default: https://sts.<region>.amazonaws.com. */
  readonly endpoint?: string;
  readonly nodeCredentials: () => Promise<NodeCredentials>;
  readonly durationSeconds: number;
  /** Attach kubernetes-* session tags (the role's trust policy must allow sts:TagSession). */
  readonly sessionTags: boolean;
  /** Value of the kubernetes-node tag when the pod does not carry its node name. */
  readonly nodeName?: string;
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Tests inject a fake STS; production uses @aws-sdk/client-sts. */
  readonly send?: StsSend;
  /** Total deadline of one STS call (default STS_LIMITS.totalMs). */
  readonly stsTotalMs?: number;
}

/** The parameters of one AssumeRole call, validated; also the source of the cache key. */
export function assumeRoleInput(req: CredentialRequest, opts: AssumeRoleIssuerOptions) {
  const tags = opts.sessionTags ? podSessionTags(req.pod, opts.nodeName) : [];
  return {
    RoleArn: req.roleArn,
    RoleSessionName: roleSessionName(req.pod),
    DurationSeconds: opts.durationSeconds,
    ...(req.externalId !== undefined ? { ExternalId: req.externalId } : {}),
    ...(tags.length > 0 ? { Tags: tags } : {}),
  };
}

type AssumeRoleInput = ReturnType<typeof assumeRoleInput>;

function problemWith(input: AssumeRoleInput): string | undefined {
  return (
    checkRoleArn(input.RoleArn) ??
    checkSessionName(input.RoleSessionName) ??
    (input.ExternalId !== undefined ? checkExternalId(input.ExternalId) : undefined) ??
    (input.Tags !== undefined ? checkTags(input.Tags) : undefined)
  );
}

export function createAssumeRoleIssuer(opts: AssumeRoleIssuerOptions): CredentialIssuer {
  // Node instance-profile credentials assuming another role count as role chaining: 1 h at most.
  const bad = checkDuration(opts.durationSeconds, true);
  if (bad !== undefined) throw new Error(`assume-role issuer: ${bad}`);
  const send: StsSend =
    opts.send ??
    ((cmd, o) => {
      const client = lazyClient();
      return client.send(cmd as AssumeRoleCommand, o);
    });
  let client: ReturnType<typeof createStsClient> | undefined;
  const lazyClient = () =>
    (client ??= createStsClient({
      region: opts.region,
      ...(opts.endpoint !== undefined ? { endpoint: opts.endpoint } : {}),
      logger: opts.logger,
      // The SDK memoizes a provider whose identity has no expiration forever; an expiration of "now"
      // makes it ask every time, and the upstream client keeps (and refreshes) the node's credentials.
      credentials: async () => {
        try {
          return { ...(await opts.nodeCredentials()), expiration: new Date() };
        } catch (err) {
          throw new NodeCredentialsError(`node credentials: ${(err as Error).message}`, { cause: err });
        }
      },
    }));

  return {
    keyFor(req) {
      return JSON.stringify(assumeRoleInput(req, opts));
    },
    async issue(req) {
      const input = assumeRoleInput(req, opts);
      const problem = problemWith(input);
      const ctx = { namespace: req.pod.namespace, pod: req.pod.name, roleArn: req.roleArn };
      if (problem !== undefined) {
        opts.metrics.stsRequests.inc({ api: 'AssumeRole', outcome: 'rejected_locally' });
        opts.logger.warn({ ...ctx, problem }, 'AssumeRole not attempted: parameters outside STS bounds');
        throw new ImdsError('CREDENTIALS_UNAVAILABLE', `AssumeRole: ${problem}`);
      }
      return callSts(
        'AssumeRole',
        (abortSignal) => send(new AssumeRoleCommand(input), { abortSignal }),
        { ...ctx, sessionName: input.RoleSessionName },
        opts,
      );
    },
  };
}
