// Shared set-up of the front-door integration tests: the real agent (serve() in this process, listening on
// loopback) against real amazon-ec2-metadata-mock and moto STS from the test environment (issue 2), plus
// a recording proxy between agent and AEMM for the "never forwarded / no X-Forwarded-For" assertions.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { testEnv } from '../../env/index.js';
import { loadConfig } from '../../../src/config.js';
import { createLogger } from '../../../src/logger.js';
import { createMetrics, type Metrics } from '../../../src/metrics.js';
import { serve, type Served } from '../../../src/serve.js';
import { Registry } from 'prom-client';

export { testEnv as env, type TestEnv as EnvLike } from '../../env/index.js';
export { startAemm, type Aemm } from '../../env/aemm.js';

export interface Recorded {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

/** A transparent proxy in front of AEMM that records what the agent sends; `script` may answer instead. */
export async function recordingUpstream(
  target: string,
  script?: (
    r: Recorded,
  ) => { status: number; body?: string | Buffer; headers?: Record<string, string> } | undefined,
) {
  const seen: Recorded[] = [];
  const server: Server = createServer((req, res) => {
    const r = { method: req.method ?? '', url: req.url ?? '', headers: req.headers };
    seen.push(r);
    const scripted = script?.(r);
    if (scripted) return res.writeHead(scripted.status, scripted.headers ?? {}).end(scripted.body ?? '');
    const up = httpRequest(`${target}${r.url}`, { method: r.method, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    async stop() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

export interface PodEntry {
  ip: string;
  namespace?: string;
  name: string;
  serviceAccount?: string;
  roleArn?: string;
}

export const ROLE_ARN = 'arn:aws:iam::123456789012:role/frontdoor-app';
export const ROLE = 'frontdoor-app';

export interface Agent {
  url: string;
  metricsUrl: string;
  served: Served;
  metrics: Metrics;
  logs: Record<string, unknown>[];
  identityFile: string;
  writePods(pods: PodEntry[], namespaces?: Record<string, { imdsv1: 'allow' | 'deny' }>): void;
  stop(): Promise<void>;
}

/** The real agent in-process: file identity, real upstream client, real STS issuer + cache against moto. */
export async function startAgent(opts: {
  upstream: string;
  pods?: PodEntry[];
  namespaces?: Record<string, { imdsv1: 'allow' | 'deny' }>;
  args?: string[];
  /** Default: the test environment's moto. */
  stsEndpoint?: string;
}): Promise<Agent> {
  const e = testEnv();
  const dir = mkdtempSync(join(tmpdir(), 'imdsgate-fd-'));
  const identityFile = join(dir, 'identity.yaml');
  const writePods: Agent['writePods'] = (pods, namespaces = {}) =>
    writeFileSync(identityFile, JSON.stringify({ pods: pods.map(withDefaults), namespaces }));
  writePods(opts.pods ?? [{ ip: '127.0.0.1', name: 'app-0', roleArn: ROLE_ARN }], opts.namespaces);
  const cfg = loadConfig(
    [
      '--listen=127.0.0.1:0',
      '--metrics-listen=127.0.0.1:0',
      `--upstream=${opts.upstream}`,
      `--identity-file=${identityFile}`,
      `--sts-endpoint=${opts.stsEndpoint ?? e.sts.endpoint}`,
      ...(opts.args ?? []),
    ],
    { IMDSGATE_MANAGE_RULES: 'false' },
  );
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger(
    'info',
    new Writable({
      write(c: Buffer, _e, cb) {
        logs.push(JSON.parse(c.toString()) as Record<string, unknown>);
        cb();
      },
    }),
  );
  const metrics = createMetrics(new Registry(), { defaults: false });
  const served = await serve(cfg, { logger, metrics });
  return {
    url: served.addresses.listen,
    metricsUrl: served.addresses.metrics,
    served,
    metrics,
    logs,
    identityFile,
    writePods,
    async stop() {
      await served.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const withDefaults = (p: PodEntry) => ({
  ip: p.ip,
  namespace: p.namespace ?? 'team-a',
  name: p.name,
  serviceAccount: p.serviceAccount ?? 'app',
  ...(p.roleArn ? { roleArn: p.roleArn } : {}),
});

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

/** One HTTP request on a fresh connection; localAddress picks the "pod" (127.0.0.x source). */
export function call(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; localAddress?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    // The path goes out verbatim: a URL string would have its dot segments resolved by the client.
    const m = /^http:\/\/([^/:]+):(\d+)(.*)$/.exec(url);
    if (!m) throw new Error(`bad url ${url}`);
    const req = httpRequest(
      {
        host: m[1],
        port: Number(m[2]),
        path: m[3] || '/',
        method: opts.method ?? 'GET',
        headers: opts.headers ?? {},
        agent: false,
        localAddress: opts.localAddress,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('latin1') });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

export const TTL = 'x-aws-ec2-metadata-token-ttl-seconds';
export const TOKEN = 'x-aws-ec2-metadata-token';

export async function token(base: string, ttl = '21600', localAddress?: string): Promise<string> {
  const r = await call(`${base}/latest/api/token`, {
    method: 'PUT',
    headers: { [TTL]: ttl },
    ...(localAddress ? { localAddress } : {}),
  });
  if (r.status !== 200) throw new Error(`token PUT answered ${r.status}`);
  return r.text;
}

/**
 * serve() in Kubernetes mode for `node`, on loopback ports, against the test environment's API server
 * and moto and the given upstream; rules off, logs dropped, its own metrics registry.
 */
export async function serveKubeMode(
  node: string,
  upstream: string,
  extraFlags: string[] = [],
): Promise<Served> {
  const e = testEnv();
  const cfg = loadConfig(
    [
      '--listen=127.0.0.1:0',
      '--metrics-listen=127.0.0.1:0',
      `--upstream=${upstream}`,
      `--kubeconfig=${e.kube.adminKubeconfig}`,
      `--node-name=${node}`,
      `--sts-endpoint=${e.sts.endpoint}`,
      ...extraFlags,
    ],
    { IMDSGATE_MANAGE_RULES: 'false' },
  );
  const logger = createLogger('warn', new Writable({ write: (_c, _e, cb) => cb() }));
  return serve(cfg, { logger, metrics: createMetrics(new Registry(), { defaults: false }) });
}

/** Polls `fn` every 100 ms until it is true; fails after `ms`. */
export async function until(fn: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('condition not met in time');
}
