// What the front door needs from the rest of the agent. Everything is an interface so that unit tests
// pass fakes and serve.ts passes the real implementations.
import type { Config } from '../config.js';
import type { CredentialIssuer } from '../credentials/types.js';
import type { UpstreamImds } from '../imds/upstream.js';
import type { TokenService } from '../imds/tokens.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Clock, PodLookup } from '../pods/types.js';
import type { Imdsv1Policy, RoleResolver } from '../roles/types.js';

/** The front door's connection and request limits (http/limits.ts enforces them; defined here so that
 * limits.ts, which imports answers.ts, is not imported back through this file). */
export interface LimitsConfig {
  readonly maxConnections: number;
  readonly maxConnectionsPerSource: number;
  readonly maxRequestsPerSource: number;
  readonly headersTimeoutMs: number;
}

export interface AppDeps {
  readonly config: Pick<Config, 'imdsv1' | 'allowPath' | 'denyPath'> & LimitsConfig;
  readonly podLookup: PodLookup;
  readonly roleResolver: RoleResolver;
  readonly imdsv1Policy: Imdsv1Policy;
  readonly credentialIssuer: CredentialIssuer;
  readonly upstream: Pick<UpstreamImds, 'forward'>;
  readonly tokens: TokenService;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly clock: Clock;
}

/** A pod's request as the pipeline sees it: no framework types. */
export interface PodRequest {
  readonly method: string;
  /** The raw request target, exactly as received. */
  readonly target: string;
  /** Socket remote address; X-Forwarded-For is never trusted. */
  readonly sourceIp: string;
  /** The TCP connection, as an opaque key: a sandbox verified once holds for the connection's life. */
  readonly connection?: object;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** What goes back to the pod. */
export interface Answer {
  readonly status: number;
  readonly contentType?: string;
  readonly body: string | Buffer;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Route classes, the `route` label of imdsgate_requests_total. */
export type RouteClass =
  'token' | 'credentials' | 'iam' | 'forward' | 'listing' | 'concealed' | 'invalid' | 'internal';
