// Composition root of `imdsgate serve`: builds the real parts in order, owns ports, readiness and
// shutdown. Order matters for safety: the front door listens and is ready before interception rules are
// installed, and rules stay in place on shutdown (fail closed: README "How it works").
//   config → logger/metrics → upstream (own IMDSv2 session) → region → credential issuer (STS + cache)
//   → identity (file or Kubernetes) → front door + metrics server → rule guard (if --manage-rules)
import { randomBytes } from 'node:crypto';
import type { Config } from './config.js';
import type { KubeClient } from './kube/rest.js';
import { createCredentialCache } from './credentials/cache.js';
import { createAssumeRoleIssuer } from './credentials/sts.js';
import { createWebIdentityIssuer } from './credentials/web-identity.js';
import type { CredentialIssuer } from './credentials/types.js';
import { buildApp } from './http/app.js';
import { LISTEN_BACKLOG } from './http/limits.js';
import { buildMetricsApp } from './http/metrics-app.js';
import { createTokenService } from './imds/tokens.js';
import { createUpstream, type UpstreamImds } from './imds/upstream.js';
import { createBatchedDestination } from './log-destination.js';
import { createLogger, logProcessWarnings, type Logger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';
import { startFileIdentity } from './pods/file-identity.js';
import { systemClock, type Clock, type PodIdentity, type PodLookup } from './pods/types.js';
import type { Imdsv1Policy, RoleResolver } from './roles/types.js';
import type { InterceptionMonitor, NetInterface } from './netfilter/interception.js';
import { createReadiness } from './readiness.js';
import { hostPort } from './host-port.js';
import { startHeapTrim } from './heap-trim.js';

/** What serve needs from an identity source (file map or the Kubernetes watch). */
export interface Identity {
  readonly podLookup: PodLookup;
  readonly roleResolver: RoleResolver;
  readonly imdsv1Policy: Imdsv1Policy;
  stop(): void | Promise<void>;
}

export interface ServeOverrides {
  readonly logger?: Logger;
  readonly metrics?: Metrics;
  readonly clock?: Clock;
  readonly tokenKey?: Buffer;
  readonly upstream?: UpstreamImds;
  readonly identity?: Identity;
  readonly credentialIssuer?: CredentialIssuer;
  /** Installs the rules; the real one is the netfilter rule guard. */
  readonly startRules?: () => Promise<Rules>;
  /** Reads the node's interfaces for the interception self-check (default: /sys/class/net). */
  readonly readInterfaces?: () => Promise<NetInterface[]>;
}

/** What serve needs of the interception rules once they are installed. */
export interface Rules {
  /** The last reconcile pass's problems; empty when every family's rules are in place. */
  problems(): string[];
  stop(): Promise<void>;
}

export interface Served {
  readonly addresses: { readonly listen: string; readonly metrics: string };
  notReady(): Promise<string[]>;
  close(): Promise<void>;
}

export async function serve(cfg: Config, o: ServeOverrides = {}): Promise<Served> {
  // Batched stdout: one write syscall per event-loop turn instead of per line (see log-destination.ts
  // for why not sonic-boom's async mode). Flushed on close.
  const dest = o.logger === undefined ? createBatchedDestination(1) : undefined;
  const logger = o.logger ?? createLogger(cfg.logLevel, dest);
  // The process's own logger (not a test's): Node's warnings become JSON lines too, until close.
  const unrouteWarnings = o.logger === undefined ? logProcessWarnings(logger) : () => undefined;
  const metrics = o.metrics ?? createMetrics();
  const clock = o.clock ?? systemClock;
  const cleanup: (() => unknown)[] = [() => dest?.flushSync(), unrouteWarnings];
  let closed = false;
  const closeAll = async () => {
    if (closed) return;
    closed = true;
    for (const fn of [...cleanup].reverse())
      await Promise.resolve(fn()).catch((err) => logger.warn({ err }, 'shutdown step failed'));
  };
  // One Kubernetes client for every part that talks to the API server (pod view, tokens, taint, own
  // DaemonSet, node Events): one connection pool and one client-side rate limit per agent, as
  // docs/large-clusters.md counts them. Created on first use, so file mode never loads it; closed last.
  const kube = sharedKubeClient(cfg, metrics);
  cleanup.push(() => kube.close());
  try {
    const upstream =
      o.upstream ??
      createUpstream({ url: cfg.upstream, timeoutMs: cfg.upstreamTimeoutMs, clock, metrics, logger });
    cleanup.push(() => upstream.close());
    const issuer =
      o.credentialIssuer ??
      (await credentialIssuer(cfg, { upstream, clock, metrics, logger, kube: kube.get }));
    if ('close' in issuer && typeof issuer.close === 'function')
      cleanup.push(() => (issuer as { close(): void }).close());
    const identity =
      o.identity ?? (await startIdentity(cfg, { logger, metrics, clock, issuer, upstream, kube: kube.get }));
    cleanup.push(() => identity.stop());

    const tokens = createTokenService({ clock, key: o.tokenKey ?? randomBytes(32) });
    const app = buildApp({
      config: cfg,
      ...pick(identity),
      credentialIssuer: issuer,
      upstream,
      tokens,
      metrics,
      logger,
      clock,
    });
    // With --manage-rules, pods must not be scheduled (startup taint) nor the rollout proceed until the
    // interception rules exist: before that, a pod's packets still reach the real IMDS.
    let rules: Rules | undefined;
    let interception: InterceptionMonitor | undefined;
    const notReady = createReadiness({
      upstream,
      identityReady: () => identity.podLookup.isReady(),
      rules: () => (cfg.manageRules ? rules?.problems() : []),
      interception: () => interception?.state(),
      clock,
    });
    metrics.wireState({
      ready: async () => (await notReady()).length === 0,
      interception: () => interception?.state(),
    });
    const metricsApp = buildMetricsApp({ registry: metrics.registry, notReady });
    cleanup.push(
      () => metricsApp.close(),
      () => app.close(),
    );
    const listen = await app.listen({ ...hostPort(cfg.listen), backlog: LISTEN_BACKLOG });
    const metricsAddr = await metricsApp.listen(hostPort(cfg.metricsListen));
    logger.info({ listen, metrics: metricsAddr, upstream: cfg.upstream }, 'imdsgate serving');
    const trim = startHeapTrim({
      logger,
      gc: globalThis.gc,
      requests: async () => (await metrics.requests.get()).values.reduce((n, v) => n + v.value, 0),
    });
    cleanup.push(() => trim.stop());

    if (cfg.manageRules) {
      const installed = await (o.startRules ?? (() => startGuard(cfg, logger, metrics, kube.get)))();
      cleanup.push(() => installed.stop());
      rules = installed;
      const { startSelfCheck } = await import('./self-check.js');
      const check = await startSelfCheck(cfg, { logger, metrics, clock, kube: kube.get }, o.readInterfaces);
      interception = check.monitor;
      cleanup.push(() => check.stop());
    }
    // Node-boot guard: the taint comes off only once /readyz is green (rules in place, pods synced).
    if (cfg.startupTaint !== undefined)
      cleanup.push(await startTaintGuard(cfg, cfg.startupTaint, logger, notReady, kube.get));
    return { addresses: { listen, metrics: metricsAddr }, notReady, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

const pick = (i: Identity) => ({
  podLookup: i.podLookup,
  roleResolver: i.roleResolver,
  imdsv1Policy: i.imdsv1Policy,
});

/** The agent's Kubernetes client, created on first use (Kubernetes mode only). */
type KubeClientSource = () => Promise<KubeClient>;

function sharedKubeClient(
  cfg: Config,
  metrics: Metrics,
): { get: KubeClientSource; close: () => Promise<void> } {
  let client: Promise<KubeClient> | undefined;
  return {
    get: () => (client ??= import('./kube/client.js').then((m) => m.kubeClientForConfig(cfg, metrics))),
    close: async () => {
      if (client !== undefined) await (await client).close();
    },
  };
}

interface Deps {
  readonly upstream: UpstreamImds;
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly kube: KubeClientSource;
}

/** The one place where the credential chain is wired: STS issuer (per --credential-mode) behind the cache. */
async function credentialIssuer(cfg: Config, d: Deps): Promise<CredentialIssuer> {
  const region = cfg.region ?? (await discoverRegion(d.upstream));
  const common = {
    region,
    ...(cfg.stsEndpoint !== undefined ? { endpoint: cfg.stsEndpoint } : {}),
    durationSeconds: cfg.sessionDurationSeconds,
    clock: d.clock,
    metrics: d.metrics,
    logger: d.logger,
  };
  const issuer =
    cfg.credentialMode === 'web-identity'
      ? createWebIdentityIssuer({ ...common, tokenFor: await tokenSource(cfg, d.kube) })
      : createAssumeRoleIssuer({
          ...common,
          nodeCredentials: () => d.upstream.getNodeCredentials(),
          sessionTags: cfg.sessionTags,
          ...(cfg.nodeName !== undefined ? { nodeName: cfg.nodeName } : {}),
        });
  return createCredentialCache(issuer, {
    clock: d.clock,
    metrics: d.metrics,
    logger: d.logger,
    waitMs: cfg.credentialWaitMs,
  });
}

/** Service-account tokens through TokenRequest; loaded lazily so file mode never loads the kube client. */
async function tokenSource(
  cfg: Config,
  kube: KubeClientSource,
): Promise<(pod: PodIdentity) => Promise<string>> {
  if (cfg.identityFile !== undefined) {
    throw new Error('--credential-mode=web-identity needs the Kubernetes API: unset --identity-file');
  }
  const { createTokenSource } = await import('./kube/token.js');
  return createTokenSource(await kube(), cfg.tokenAudience);
}

async function discoverRegion(upstream: UpstreamImds): Promise<string> {
  try {
    return (await upstream.identityDocument()).region;
  } catch (err) {
    throw new Error(
      `--region is unset and the upstream identity document is unavailable: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

async function startIdentity(
  cfg: Config,
  d: {
    logger: Logger;
    metrics: Metrics;
    clock: Clock;
    issuer: CredentialIssuer;
    upstream: UpstreamImds;
    kube: KubeClientSource;
  },
): Promise<Identity> {
  if (cfg.identityFile !== undefined) {
    return startFileIdentity({
      path: cfg.identityFile,
      imdsv1: cfg.imdsv1,
      logger: d.logger,
      metrics: d.metrics,
    });
  }
  // Loaded only in Kubernetes mode, so file mode never loads the Kubernetes client; typed all the same.
  const { startKubeIdentity } = await import('./kube/identity.js');
  const kube = await startKubeIdentity(cfg, {
    logger: d.logger,
    metrics: d.metrics,
    clock: d.clock,
    credentialIssuer: d.issuer,
    upstream: d.upstream,
    kubeClient: await d.kube(),
  });
  return kube;
}

async function startGuard(
  cfg: Config,
  logger: Logger,
  metrics: Metrics,
  kube: KubeClientSource,
): Promise<Rules> {
  const { startRuleGuard } = await import('./netfilter/guard.js');
  const owner =
    cfg.daemonset === undefined
      ? undefined
      : await watchOwnDaemonSet(cfg, cfg.daemonset, logger, await kube());
  const guard = await startRuleGuard(cfg, { logger, metrics });
  return {
    problems: () => guard.problems(),
    async stop() {
      await guard.stop();
      if (owner !== undefined && (await owner.deleted())) await owner.removeRules();
      owner?.stop();
    },
  };
}

/** Uninstall mode (src/kube/daemonset-watch.ts): rules go only when the agent saw its DaemonSet deleted. */
async function watchOwnDaemonSet(cfg: Config, ref: string, logger: Logger, client: KubeClient) {
  const [dsw, { removeRules }, { execaRunner }] = await Promise.all([
    import('./kube/daemonset-watch.js'),
    import('./netfilter/remove.js'),
    import('./netfilter/runner.js'),
  ]);
  const watch = dsw.watchDaemonSet(client, dsw.parseDaemonSetRef(ref)!, logger);
  const backends = cfg.iptablesBackend === 'auto' ? (['nft', 'legacy'] as const) : [cfg.iptablesBackend];
  return {
    deleted: () => watch.deleted(),
    removeRules: async () => {
      const { removed } = await removeRules(execaRunner(), backends, logger);
      logger.info({ removed }, 'own DaemonSet deleted: interception rules removed (uninstall)');
    },
    stop: () => watch.stop(),
  };
}

async function startTaintGuard(
  cfg: Config,
  key: string,
  logger: Logger,
  notReady: () => Promise<string[]>,
  kube: KubeClientSource,
): Promise<() => void> {
  if (cfg.nodeName === undefined) throw new Error('--startup-taint needs --node-name');
  const { startStartupTaintGuard } = await import('./kube/startup-taint.js');
  const guard = startStartupTaintGuard({
    client: await kube(),
    nodeName: cfg.nodeName,
    key,
    logger,
    notReady,
  });
  return () => guard.stop();
}

/** `0.0.0.0:8181` / `[::1]:8181` → fastify listen options (src/host-port.ts). */
export { hostPort } from './host-port.js';
