// The agent's own client to the real IMDS: one keep-alive undici Pool, one IMDSv2 session of the agent's
// own (pods' tokens are never relayed; docs/protocol.md §0.6, §3), and only the headers the agent chooses,
// so no X-Forwarded-For / Forwarded / Via ever reaches IMDS (§0.2, §13 #10). No retries beyond one
// re-PUT after upstream rejects our session token, so a throttled upstream (429) is not hit harder (§13 #17).
// A pod's forward() ends by `timeoutMs` in all, session PUT and retry included; exchange.ts bounds each
// exchange, body included, and decides what of upstream's answer a pod may see.
import { ImdsError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Clock } from '../pods/types.js';
import { exchange, toImdsError, type UpstreamResponse } from './exchange.js';
import { createNodeCredentialSource, type NodeCredentials } from './node-credentials.js';
import { Pool } from '../undici.js';

export type { NodeCredentials, UpstreamResponse };

export interface IdentityDocument {
  readonly region: string;
  readonly accountId: string;
  readonly instanceId: string;
  readonly [k: string]: unknown;
}

export interface UpstreamImds {
  /** GET/HEAD a canonical wire path with the agent's session. Throws ImdsError UPSTREAM_*. */
  forward(method: 'GET' | 'HEAD', wirePath: string): Promise<UpstreamResponse>;
  /** The node's own role credentials, for the assume-role issuer only. Never served to pods. */
  getNodeCredentials(): Promise<NodeCredentials>;
  identityDocument(): Promise<IdentityDocument>;
  /** Obtains (or confirms) the upstream session; false when upstream cannot be reached. */
  checkSession(): Promise<boolean>;
  close(): Promise<void>;
}

export interface UpstreamOptions {
  readonly url: string;
  readonly timeoutMs: number;
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** How long to stay token-less after upstream refuses a token PUT (403/404/405), before asking again. */
  readonly v1RetryMs?: number;
  /** Largest upstream body relayed (default 1 MiB; user-data is at most 16 KiB, IMDS' own cap). */
  readonly maxBodyBytes?: number;
}

const SESSION_TTL = 21_600;
const REFRESH_MARGIN_MS = 5 * 60_000;

type Session =
  | { readonly mode: 'v2'; readonly token: string; readonly refreshAt: number }
  | { readonly mode: 'v1'; readonly refreshAt: number };

const tokenHeader = (s: Session): Record<string, string> =>
  s.mode === 'v2' ? { 'x-aws-ec2-metadata-token': s.token } : {};

export function createUpstream(opts: UpstreamOptions): UpstreamImds {
  const pool = new Pool(new URL(opts.url).origin, {
    connections: 32,
    pipelining: 1,
    keepAliveTimeout: 4_000,
    connect: { timeout: opts.timeoutMs },
    headersTimeout: opts.timeoutMs,
    bodyTimeout: opts.timeoutMs,
  });
  const maxBody = opts.maxBodyBytes ?? 1024 * 1024;
  let session: Session | undefined;
  let pending: Promise<Session> | undefined;

  async function send(method: string, path: string, headers: Record<string, string>, deadline: number) {
    const started = performance.now();
    const limits = { timeoutMs: Math.max(1, deadline - started), maxBodyBytes: maxBody };
    try {
      const res = await exchange(pool, { method, path, headers }, limits);
      observe(started, `${Math.floor(res.status / 100)}xx`);
      return res;
    } catch (err) {
      observe(started, 'error');
      throw toImdsError(err, opts.metrics);
    }
  }
  const observe = (started: number, cls: string) =>
    opts.metrics.upstreamDuration.observe({ status_class: cls }, (performance.now() - started) / 1000);

  async function newSession(): Promise<Session> {
    const now = opts.clock();
    let res: UpstreamResponse;
    try {
      res = await send(
        'PUT',
        '/latest/api/token',
        { 'x-aws-ec2-metadata-token-ttl-seconds': `${SESSION_TTL}` },
        performance.now() + opts.timeoutMs,
      );
    } catch (err) {
      opts.metrics.upstreamErrors.inc({ kind: 'session' });
      throw err;
    }
    if (res.status === 200 && res.body.length > 0) {
      // AEMM and IMDS echo the TTL; moto does not (docs/protocol.md §9), so assume what we asked for.
      return { mode: 'v2', token: res.body.toString('latin1').trim(), refreshAt: refreshAt(now) };
    }
    if (res.status === 403 || res.status === 404 || res.status === 405) {
      // What SDKs do too (§6.3): no IMDSv2 upstream, so go token-less and ask again later.
      opts.logger.warn({ status: res.status }, 'upstream refused a session token; using IMDSv1 for now');
      return { mode: 'v1', refreshAt: now + (opts.v1RetryMs ?? 60_000) };
    }
    opts.metrics.upstreamErrors.inc({ kind: 'session' });
    throw new ImdsError('UPSTREAM_UNAVAILABLE', `upstream token PUT answered ${res.status}`);
  }
  const refreshAt = (now: number) => now + SESSION_TTL * 1000 - REFRESH_MARGIN_MS;

  async function currentSession(): Promise<Session> {
    if (session !== undefined && opts.clock() < session.refreshAt) return session;
    pending ??= newSession().finally(() => (pending = undefined));
    session = await pending;
    return session;
  }

  async function forward(method: 'GET' | 'HEAD', path: string): Promise<UpstreamResponse> {
    const deadline = performance.now() + opts.timeoutMs;
    // The common case (a live session) without the extra promise of awaiting currentSession().
    const s =
      session !== undefined && opts.clock() < session.refreshAt
        ? session
        : await within(currentSession(), deadline);
    const res = await send(method, path, tokenHeader(s), deadline);
    if (res.status !== 401) return res;
    // Upstream forgot our session (restart, clock jump) or now requires IMDSv2 while we were token-less:
    // one new session, one retry.
    if (session === s) session = undefined;
    const again = await within(currentSession(), deadline);
    const retried = await send(method, path, tokenHeader(again), deadline);
    if (retried.status !== 401) return retried;
    // A 401 is about the *agent's* session, never the pod's token (the agent checked that one). Relaying it
    // would make the pod's SDK re-PUT a token and ask again for ever (docs/protocol.md §6.3), so it is the
    // agent's upstream that failed: 502.
    session = undefined;
    opts.metrics.upstreamErrors.inc({ kind: 'session' });
    throw new ImdsError('UPSTREAM_UNAVAILABLE', 'upstream refused a fresh session token');
  }

  /** A shared session PUT may have started for another request: wait for it only until our deadline. */
  function within<T>(p: Promise<T>, deadline: number): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => {
          opts.metrics.upstreamErrors.inc({ kind: 'timeout' });
          reject(new ImdsError('UPSTREAM_TIMEOUT', 'upstream session not ready in time'));
        },
        Math.max(0, deadline - performance.now()),
      );
    });
    return Promise.race([p, late]).finally(() => clearTimeout(timer));
  }

  let identity: Promise<IdentityDocument> | undefined;
  const nodeCreds = createNodeCredentialSource({ forward, clock: opts.clock, logger: opts.logger });
  return {
    forward,
    getNodeCredentials: () => nodeCreds.get(),
    identityDocument() {
      identity ??= fetchIdentity(forward).catch((err: unknown) => {
        identity = undefined;
        throw err;
      });
      return identity;
    },
    async checkSession() {
      try {
        await currentSession();
        return true;
      } catch {
        return false;
      }
    },
    close: () => pool.close(),
  };
}

async function fetchIdentity(
  forward: (m: 'GET', p: string) => Promise<UpstreamResponse>,
): Promise<IdentityDocument> {
  const res = await forward('GET', '/latest/dynamic/instance-identity/document');
  if (res.status !== 200) {
    throw new ImdsError('UPSTREAM_UNAVAILABLE', `identity document answered ${res.status}`);
  }
  const doc = JSON.parse(res.body.toString('utf8')) as IdentityDocument;
  if (typeof doc.region !== 'string' || typeof doc.accountId !== 'string') {
    throw new ImdsError('UPSTREAM_UNAVAILABLE', 'identity document lacks region/accountId');
  }
  return doc;
}
