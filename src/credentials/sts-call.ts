// One STS call, measured and mapped: the SDK client both issuers share, and the translation of STS
// answers into Credentials or ImdsError('CREDENTIALS_UNAVAILABLE'). An STS 4xx/5xx is never passed on
// as 200 credentials (docs/protocol.md §13 item 59).
//
// Every call is bounded (STS_LIMITS): the SDK's Node handler cuts a connect that takes too long and,
// with throwOnRequestTimeout (without it, it only logs a warning: setRequestTimeout in
// @smithy/node-http-handler 4.x), a request with no response headers in time; a socket idle timeout cuts a stalled body; and callSts
// aborts whatever is still running at the total deadline. A pod does not wait for this: the credential
// cache gives up waiting earlier (credentialWaitMs) and lets the call finish for later requests.
import { STSClient, type STSClientConfig } from '@aws-sdk/client-sts';
import { ImdsError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Clock } from '../pods/types.js';
import type { Credentials } from './types.js';

/** The part of an STS answer we use; AssumeRole and AssumeRoleWithWebIdentity share it. */
export interface StsOutput {
  Credentials?: { AccessKeyId?: string; SecretAccessKey?: string; SessionToken?: string; Expiration?: Date };
  AssumedRoleUser?: { Arn?: string };
}

/** Injected in unit tests; in production it is STSClient.send. */
export type StsSend = (command: object, opts: { abortSignal: AbortSignal }) => Promise<StsOutput>;

export interface StsDeps {
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Total deadline of one call (default STS_LIMITS.totalMs); tests shorten it. */
  readonly stsTotalMs?: number;
}

/** Bounds of one STS call, in milliseconds (docs/deadlines.md). */
export const STS_LIMITS: Readonly<Record<'connectMs' | 'firstByteMs' | 'idleMs' | 'totalMs', number>> = {
  /** TCP connect. */
  connectMs: 1000,
  /** From sending the request to the response headers (TLS handshake included). */
  firstByteMs: 3000,
  /** The socket idle between two reads. */
  idleMs: 3000,
  /** The whole call, body included. */
  totalMs: 5000,
};

/** Regional endpoint (docs/protocol.md §11; checklist 57), never the global sts.amazonaws.com. */
export function regionalStsEndpoint(region: string): string {
  const suffix = region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
  return `https://sts.${region}.${suffix}`;
}

/**
 * A client with SDK retries off: the credential cache owns backoff, and a retry storm inside the SDK
 * would hold a pod's request past the 1 s its SDK waits. Timeouts are short for the same reason.
 */
export function createStsClient(opts: {
  region: string;
  endpoint?: string;
  credentials?: STSClientConfig['credentials'];
  logger: Logger;
  /** Tests shorten the bounds; production uses STS_LIMITS. */
  limits?: Partial<typeof STS_LIMITS>;
}): STSClient {
  const limits = { ...STS_LIMITS, ...opts.limits };
  // The SDK writes its warnings with console.warn unless given a logger: ours keeps them JSON lines.
  const logger = sdkLogger(opts.logger);
  return new STSClient({
    region: opts.region,
    endpoint: opts.endpoint ?? regionalStsEndpoint(opts.region),
    maxAttempts: 1,
    logger,
    requestHandler: {
      connectionTimeout: limits.connectMs,
      requestTimeout: limits.firstByteMs,
      throwOnRequestTimeout: true,
      socketTimeout: limits.idleMs,
      logger,
    },
    // Web identity needs no signature; an explicit failing provider keeps the SDK from searching the
    // default chain (which on a node would find the node's own role).
    credentials:
      opts.credentials ??
      (async () => {
        throw new Error('no credentials: this STS client only makes unsigned calls');
      }),
  });
}

/** The SDK's Logger interface on pino; debug and info stay quiet (the SDK is chatty there). */
function sdkLogger(logger: Logger) {
  const child = logger.child({ component: 'aws-sdk' });
  const text = (args: unknown[]) =>
    args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
  return {
    debug: () => undefined,
    info: () => undefined,
    warn: (...args: unknown[]) => child.warn(text(args)),
    error: (...args: unknown[]) => child.error(text(args)),
  };
}

/** The node's own credentials could not be had (upstream IMDS down): not an STS failure. */
export class NodeCredentialsError extends Error {
  override readonly name = 'NodeCredentialsUnavailable';
}

/** STS error name (AccessDenied, ValidationError, Throttling, ...) bounded for use as a label. */
export function stsErrorCode(err: unknown): string {
  if (err instanceof NodeCredentialsError) return err.name;
  const e = err as { name?: unknown; code?: unknown; $metadata?: { httpStatusCode?: unknown } };
  // The SDK names ECONNRESET and EPIPE "TimeoutError" too, so the code decides first.
  if (e.code === 'ETIMEDOUT') return 'Timeout';
  if (typeof e.code === 'string' && /^E[A-Z0-9_]+$/.test(e.code)) return 'NetworkError';
  if (e.name === 'TimeoutError') return 'Timeout';
  if (typeof e.$metadata?.httpStatusCode !== 'number') return 'NetworkError';
  const name = typeof e.name === 'string' ? e.name : '';
  return /^[A-Za-z]{1,64}$/.test(name) ? name : 'UnknownError';
}

export async function callSts(
  api: 'AssumeRole' | 'AssumeRoleWithWebIdentity',
  send: (abortSignal: AbortSignal) => Promise<StsOutput>,
  ctx: Record<string, unknown>,
  deps: StsDeps,
): Promise<Credentials> {
  const started = performance.now();
  let out: StsOutput;
  try {
    out = await withDeadline(send, deps.stsTotalMs ?? STS_LIMITS.totalMs);
  } catch (err) {
    const code = stsErrorCode(err);
    deps.metrics.stsRequests.inc({ api, outcome: code });
    deps.logger.warn({ ...ctx, api, stsCode: code, err: (err as Error).message }, 'STS call failed');
    throw new ImdsError('CREDENTIALS_UNAVAILABLE', `${api}: ${code}`, { cause: err });
  } finally {
    deps.metrics.stsDuration.observe({ api }, (performance.now() - started) / 1000);
  }
  const creds = toCredentials(out, deps.clock);
  if (creds === undefined) {
    deps.metrics.stsRequests.inc({ api, outcome: 'IncompleteResponse' });
    throw new ImdsError('CREDENTIALS_UNAVAILABLE', `${api}: incomplete credentials in STS answer`);
  }
  deps.metrics.stsRequests.inc({ api, outcome: 'success' });
  deps.logger.info(
    { ...ctx, api, accessKeyId: creds.accessKeyId, expiration: creds.expiration.toISOString() },
    'STS session issued',
  );
  return creds;
}

/** Runs `send` with a signal that aborts it at the deadline, and rejects then whatever `send` does. */
function withDeadline<T>(send: (signal: AbortSignal) => Promise<T>, ms: number): Promise<T> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = Object.assign(new Error(`STS call over ${ms} ms`), { name: 'TimeoutError' });
      abort.abort(err);
      reject(err);
    }, ms);
  });
  return Promise.race([send(abort.signal), late]).finally(() => clearTimeout(timer));
}

function toCredentials(out: StsOutput, clock: Clock): Credentials | undefined {
  const c = out.Credentials;
  if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !(c.Expiration instanceof Date)) {
    return undefined;
  }
  if (Number.isNaN(c.Expiration.getTime())) return undefined;
  const account = out.AssumedRoleUser?.Arn?.split(':')[4];
  return {
    accessKeyId: c.AccessKeyId,
    secretAccessKey: c.SecretAccessKey,
    sessionToken: c.SessionToken,
    expiration: c.Expiration,
    lastUpdated: new Date(clock()),
    ...(account && /^\d{12}$/.test(account) ? { accountId: account } : {}),
  };
}
