// The Kubernetes identity source serve.ts loads when --identity-file is unset: the node-scoped pod watch,
// namespace and service-account views, the pure role decision, denial Events, and the credential cache
// kept in step with the live pods (prefetch when a pod appears or its role changes, drop when no live pod
// needs a session any more).
import type { Config } from '../config.js';
import type { CredentialCache } from '../credentials/cache.js';
import type { CredentialIssuer, CredentialRequest } from '../credentials/types.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { startPodWatcher, type PodWatcher } from '../pods/watcher.js';
import type { Clock, PodIdentity, PodLookup } from '../pods/types.js';
import { decideRole, imdsv1For, type DecisionConfig, type DecisionInput } from '../roles/decide.js';
import { buildDecisionConfig } from '../roles/decision-config.js';
import type { Imdsv1Policy, RoleDecision, RoleResolver } from '../roles/types.js';
import { kubeClientForConfig } from './client.js';
import { createDenialEvents } from './events.js';
import type { KubeClient } from './rest.js';
import { startNamespaceView, startServiceAccountView } from './views.js';

export interface KubeIdentityDeps {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly clock: Clock;
  /** The credential cache (prefetch/retain are used when it has them). */
  readonly credentialIssuer?: CredentialIssuer;
  /** A client of the caller's; otherwise one is made from --kubeconfig (or in-cluster) and closed on stop. */
  readonly kubeClient?: KubeClient;
  /** Source of the account for bare role names when --base-role-arn is unset. */
  readonly upstream?: { identityDocument(): Promise<{ accountId: string; region: string }> };
}

export interface KubeIdentity {
  readonly podLookup: PodLookup;
  readonly roleResolver: RoleResolver;
  readonly imdsv1Policy: Imdsv1Policy;
  /** Resolves once pods, namespaces and service accounts have all been listed. */
  readonly synced: Promise<void>;
  /** The inputs of a decision, for `explain` and tests. */
  inputsFor(pod: PodIdentity): DecisionInput;
  stop(): void;
}

/** arn:<partition>:iam::<account>:role/ from the identity document (src/arn.ts). */
export { baseRoleArnFor as baseArnFor } from '../arn.js';

const isCache = (i: CredentialIssuer | undefined): i is CredentialCache =>
  i !== undefined && 'prefetch' in i && 'retain' in i && 'keyFor' in i;

export async function startKubeIdentity(cfg: Config, d: KubeIdentityDeps): Promise<KubeIdentity> {
  if (cfg.nodeName === undefined) throw new Error('--node-name is required for the Kubernetes pod watch');
  const client = d.kubeClient ?? kubeClientForConfig(cfg, d.metrics);
  // The same builder as `imdsgate explain` (roles/decision-config.ts).
  const config: DecisionConfig = await buildDecisionConfig(cfg, d.upstream, (err) =>
    d.logger.warn({ err: err.message }, 'account unknown: bare role names will be denied'),
  );
  const { logger, metrics, clock } = d;
  // The pod view's staleness limit covers the annotation views too: a decision needs all three.
  const viewOpts = { clock, maxStalenessSeconds: cfg.maxPodViewStalenessSeconds };
  const namespaces = startNamespaceView(client, logger, viewOpts);
  const serviceAccounts = startServiceAccountView(client, logger, viewOpts);
  const watcher = startPodWatcher({
    client,
    nodeName: cfg.nodeName,
    unknownPodWaitMs: cfg.unknownPodWaitMs,
    maxStalenessSeconds: cfg.maxPodViewStalenessSeconds,
    sandboxBinding: cfg.sandboxBinding,
    ipamLeaseDir: cfg.ipamLeaseDir,
    clock,
    metrics,
    logger,
  });
  const events = createDenialEvents(client, { clock, metrics, logger, nodeName: cfg.nodeName });
  const viewsReady = () => namespaces.isReady() && serviceAccounts.isReady();
  const synced = Promise.all([namespaces.synced, serviceAccounts.synced, watcher.synced]).then(
    () => undefined,
  );

  const inputsFor = (pod: PodIdentity): DecisionInput => ({
    pod,
    serviceAccount: serviceAccounts.get(pod.namespace, pod.serviceAccount),
    namespace: namespaces.get(pod.namespace),
    config,
  });
  const denied = (pod: PodIdentity, decision: Extract<RoleDecision, { allow: false }>) => {
    // no_role is the normal state of most pods: neither an Event nor a warning.
    if (decision.reason === 'no_role' || !viewsReady()) return;
    events.denied(pod, decision.reason, decision.detail);
  };
  const sync = createCredentialSync(watcher, d.credentialIssuer, inputsFor, viewsReady, logger, denied);
  watcher.onChange(sync.podChanged);
  namespaces.onChange((ns) => sync.reevaluate((p) => p.namespace === ns));
  serviceAccounts.onChange((ns, sa) => sync.reevaluate((p) => p.namespace === ns && p.serviceAccount === sa));
  void Promise.all([namespaces.synced, serviceAccounts.synced]).then(() => sync.reevaluate(() => true));

  const imdsv1Logged = new Map<string, string>();
  return {
    podLookup: {
      byIp: (ip, conn, o) => watcher.byIp(ip, conn, o),
      isReady: () => watcher.isReady() && viewsReady(),
    },
    roleResolver: {
      resolve(pod) {
        const decision = decideRole(inputsFor(pod));
        if (!decision.allow) denied(pod, decision);
        return decision;
      },
    },
    imdsv1Policy: {
      forPod(pod) {
        const { policy, problem } = imdsv1For(namespaces.get(pod.namespace)?.annotations, cfg.imdsv1);
        if (problem !== undefined && imdsv1Logged.get(pod.namespace) !== problem) {
          imdsv1Logged.set(pod.namespace, problem);
          logger.warn({ namespace: pod.namespace, problem }, 'invalid IMDSv1 annotation: IMDSv1 denied');
        }
        return policy;
      },
    },
    synced,
    inputsFor,
    stop() {
      watcher.stop();
      namespaces.stop();
      serviceAccounts.stop();
      sync.stop();
      if (d.kubeClient === undefined) void client.close();
    },
  };
}

/** Keeps the credential cache in step with live pods and logs each pod's denial once per change. */
function createCredentialSync(
  watcher: PodWatcher,
  issuer: CredentialIssuer | undefined,
  inputsFor: (pod: PodIdentity) => DecisionInput,
  viewsReady: () => boolean,
  logger: Logger,
  denied: (pod: PodIdentity, d: Extract<RoleDecision, { allow: false }>) => void,
) {
  const cache = isCache(issuer) ? issuer : undefined;
  const lastLogged = new Map<string, string>();
  let retainTimer: NodeJS.Timeout | undefined;

  const requestFor = (pod: PodIdentity): CredentialRequest | undefined => {
    const decision = decideRole(inputsFor(pod));
    if (!decision.allow) {
      const sig = `${decision.reason}|${decision.detail}`;
      if (viewsReady() && decision.reason !== 'no_role' && lastLogged.get(pod.uid) !== sig) {
        lastLogged.set(pod.uid, sig);
        logger.warn(
          { namespace: pod.namespace, pod: pod.name, reason: decision.reason, detail: decision.detail },
          'pod denied a role',
        );
        denied(pod, decision);
      }
      return undefined;
    }
    lastLogged.delete(pod.uid);
    return {
      pod,
      roleArn: decision.roleArn,
      ...(decision.externalId !== undefined ? { externalId: decision.externalId } : {}),
    };
  };
  const prefetch = (pod: PodIdentity) => {
    const req = requestFor(pod);
    if (req !== undefined && cache !== undefined) void cache.prefetch(req);
  };
  // Coalesced: a relist or a namespace change touches many pods at once.
  const scheduleRetain = () => {
    if (cache === undefined || retainTimer !== undefined) return;
    retainTimer = setTimeout(() => {
      retainTimer = undefined;
      if (!viewsReady() || !watcher.isReady()) return;
      const keys: string[] = [];
      for (const pod of watcher.pods()) {
        const req = requestFor(pod);
        if (req !== undefined) keys.push(cache.keyFor(req));
      }
      const dropped = cache.retain(keys);
      if (dropped > 0) logger.debug({ dropped }, 'credential sessions dropped: no live pod needs them');
    }, 200);
  };

  return {
    podChanged(c: { kind: 'added' | 'updated' | 'removed'; pod: PodIdentity }) {
      if (c.kind === 'removed') lastLogged.delete(c.pod.uid);
      else if (viewsReady()) prefetch(c.pod);
      if (c.kind !== 'added') scheduleRetain();
    },
    reevaluate(match: (pod: PodIdentity) => boolean) {
      if (!viewsReady()) return;
      for (const pod of watcher.pods()) if (match(pod)) prefetch(pod);
      scheduleRetain();
    },
    stop() {
      if (retainTimer !== undefined) clearTimeout(retainTimer);
    },
  };
}
