// Fakes for the front door's interfaces (one module under test at a time; the integration tests use the
// real ones). The clock is shared and moved by hand.
import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { buildApp, type AppDeps } from '../../../src/http/app.js';
import type { Credentials, CredentialRequest } from '../../../src/credentials/types.js';
import type { UpstreamResponse } from '../../../src/imds/upstream.js';
import { createTokenService } from '../../../src/imds/tokens.js';
import { loadConfig } from '../../../src/config.js';
import { createLogger } from '../../../src/logger.js';
import { createMetrics } from '../../../src/metrics.js';
import type { PodIdentity, PodLookupResult } from '../../../src/pods/types.js';
import type { RoleDecision } from '../../../src/roles/types.js';

export const T0 = Date.parse('2026-03-01T12:00:00Z');
export const ROLE_ARN = 'arn:aws:iam::123456789012:role/app-role';

export const pod = (ip: string, name: string, extra: Partial<PodIdentity> = {}): PodIdentity => ({
  ip,
  namespace: 'team-a',
  name,
  uid: `uid-${name}`,
  serviceAccount: 'app',
  annotations: {},
  ...extra,
});

export interface Harness {
  app: ReturnType<typeof buildApp>;
  now: { ms: number };
  pods: Map<string, PodLookupResult>;
  roles: Map<string, RoleDecision>;
  v1: Map<string, 'allow' | 'deny'>;
  issued: CredentialRequest[];
  upstreamCalls: string[];
  logs: Record<string, unknown>[];
  metrics: ReturnType<typeof createMetrics>;
  /** What podLookup.isReady() answers (the pod view synced and fresh). */
  ready: { value: boolean };
  /** Source IPs podLookup.byIp was asked for. */
  lookups: string[];
  /** Per lookup: whether the pipeline let it wait for an unknown pod. */
  waits: boolean[];
  setUpstream(fn: (path: string) => Promise<UpstreamResponse>): void;
  setIssuer(fn: (req: CredentialRequest) => Promise<Credentials>): void;
}

/** The front-door limits at their shipped defaults. */
const { maxConnections, maxConnectionsPerSource, maxRequestsPerSource, headersTimeoutMs } = loadConfig(
  ['--identity-file=unused.yaml'],
  { IMDSGATE_MANAGE_RULES: 'false' },
);
const LIMIT_DEFAULTS = { maxConnections, maxConnectionsPerSource, maxRequestsPerSource, headersTimeoutMs };

export function harness(opts: Partial<AppDeps['config']> = {}): Harness {
  const now = { ms: T0 };
  const clock = () => now.ms;
  const pods = new Map<string, PodLookupResult>();
  const roles = new Map<string, RoleDecision>();
  const v1 = new Map<string, 'allow' | 'deny'>();
  const issued: CredentialRequest[] = [];
  const upstreamCalls: string[] = [];
  const logs: Record<string, unknown>[] = [];
  const ready = { value: true };
  const lookups: string[] = [];
  const waits: boolean[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      cb();
    },
  });
  let upstream = async (_p: string): Promise<UpstreamResponse> => ({
    status: 200,
    contentType: 'text/plain',
    body: Buffer.from('i-0123456789abcdef0'),
  });
  let issuer = async (_r: CredentialRequest): Promise<Credentials> => ({
    accessKeyId: 'ASIAPODKEY',
    secretAccessKey: 'pod-secret',
    sessionToken: 'pod-session-token',
    expiration: new Date(now.ms + 3600_000),
    lastUpdated: new Date(now.ms - 1000),
  });
  const metrics = createMetrics(new Registry(), { defaults: false });
  const app = buildApp({
    config: { ...LIMIT_DEFAULTS, imdsv1: 'allow', allowPath: [], denyPath: [], ...opts },
    podLookup: {
      byIp: async (ip, _conn, o) => (
        lookups.push(ip),
        waits.push(o?.wait !== false),
        pods.get(ip) ?? { kind: 'unknown' }
      ),
      isReady: () => ready.value,
    },
    roleResolver: {
      resolve: (p) => roles.get(p.name) ?? { allow: false, reason: 'no_role', detail: 'none' },
    },
    imdsv1Policy: { forPod: (p) => v1.get(p.namespace) ?? opts.imdsv1 ?? 'allow' },
    credentialIssuer: {
      issue: async (r) => {
        issued.push(r);
        return issuer(r);
      },
    },
    upstream: {
      forward: async (_m, path) => {
        upstreamCalls.push(path);
        return upstream(path);
      },
    },
    tokens: createTokenService({ clock, key: Buffer.alloc(32, 1) }),
    metrics,
    logger: createLogger('debug', sink),
    clock,
  });
  return {
    app,
    now,
    pods,
    roles,
    v1,
    issued,
    upstreamCalls,
    logs,
    metrics,
    ready,
    lookups,
    waits,
    setUpstream: (fn) => (upstream = fn),
    setIssuer: (fn) => (issuer = fn),
  };
}

/** Pod 10.0.0.1 = team-a/web with app-role; 10.0.0.2 = team-a/batch without a role. */
export function standardPods(h: Harness): void {
  h.pods.set('10.0.0.1', { kind: 'found', pod: pod('10.0.0.1', 'web') });
  h.pods.set('10.0.0.2', { kind: 'found', pod: pod('10.0.0.2', 'batch') });
  h.roles.set('web', { allow: true, roleArn: ROLE_ARN, roleName: 'app-role', source: 'test' });
}
