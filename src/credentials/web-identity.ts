// web-identity mode: the agent asks the API server for a short-lived token of the pod's service account
// (TokenRequest, audience configurable) and calls AssumeRoleWithWebIdentity, which is unsigned. The node
// role needs no sts:AssumeRole on app roles (the kube2iam#8 complaint); the role trusts the cluster's OIDC
// issuer, exactly as with IRSA.
import { AssumeRoleWithWebIdentityCommand } from '@aws-sdk/client-sts';
import { ImdsError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Clock, PodIdentity } from '../pods/types.js';
import { roleSessionName } from './session.js';
import { callSts, createStsClient, type StsSend } from './sts-call.js';
import { checkDuration, checkRoleArn, checkSessionName } from './sts-limits.js';
import type { CredentialIssuer, CredentialRequest } from './types.js';

export interface WebIdentityIssuerOptions {
  readonly region: string;
  readonly endpoint?: string;
  readonly durationSeconds: number;
  /** A service-account token for the pod (TokenRequest); see kube/token.ts. */
  readonly tokenFor: (pod: PodIdentity) => Promise<string>;
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly send?: StsSend;
  /** Total deadline of one STS call (default STS_LIMITS.totalMs). */
  readonly stsTotalMs?: number;
}

const API = 'AssumeRoleWithWebIdentity';

export function createWebIdentityIssuer(opts: WebIdentityIssuerOptions): CredentialIssuer {
  const bad = checkDuration(opts.durationSeconds, false);
  if (bad !== undefined) throw new Error(`web-identity issuer: ${bad}`);
  let client: ReturnType<typeof createStsClient> | undefined;
  const send: StsSend =
    opts.send ??
    ((cmd, o) => {
      client ??= createStsClient({
        region: opts.region,
        ...(opts.endpoint !== undefined ? { endpoint: opts.endpoint } : {}),
        logger: opts.logger,
      });
      return client.send(cmd as AssumeRoleWithWebIdentityCommand, o);
    });
  const base = (req: CredentialRequest) => ({
    RoleArn: req.roleArn,
    RoleSessionName: roleSessionName(req.pod),
    DurationSeconds: opts.durationSeconds,
  });
  const reject = (ctx: object, problem: string): never => {
    opts.metrics.stsRequests.inc({ api: API, outcome: 'rejected_locally' });
    opts.logger.warn({ ...ctx, problem }, `${API} not attempted`);
    throw new ImdsError('CREDENTIALS_UNAVAILABLE', `${API}: ${problem}`);
  };

  return {
    // The token is not part of the key: a fresh one is asked for on every STS call.
    keyFor: (req) => JSON.stringify({ ...base(req), sa: req.pod.serviceAccount, ns: req.pod.namespace }),
    async issue(req) {
      const input = base(req);
      const ctx = { namespace: req.pod.namespace, pod: req.pod.name, roleArn: req.roleArn };
      const problem = checkRoleArn(input.RoleArn) ?? checkSessionName(input.RoleSessionName);
      if (problem !== undefined) reject(ctx, problem);
      // The role owner's ExternalId guard has no meaning for a web-identity trust; refuse rather than drop it.
      if (req.externalId !== undefined) reject(ctx, 'ExternalId is not supported with web identity');
      let token: string;
      try {
        token = await opts.tokenFor(req.pod);
      } catch (err) {
        opts.metrics.stsRequests.inc({ api: API, outcome: 'TokenRequestFailed' });
        opts.logger.warn({ ...ctx, err: (err as Error).message }, 'TokenRequest failed');
        throw new ImdsError('CREDENTIALS_UNAVAILABLE', `TokenRequest: ${(err as Error).message}`, {
          cause: err,
        });
      }
      if (token.length < 4 || token.length > 20_000) reject(ctx, 'web identity token length outside 4-20000');
      const command = new AssumeRoleWithWebIdentityCommand({ ...input, WebIdentityToken: token });
      return callSts(
        API,
        (abortSignal) => send(command, { abortSignal }),
        { ...ctx, sessionName: input.RoleSessionName },
        opts,
      );
    },
  };
}
