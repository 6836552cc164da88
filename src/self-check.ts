// The interception self-check as the agent runs it (netfilter/interception.ts decides): every
// --reconcile-interval-ms, logged on each change and, in Kubernetes mode, a Node Event. Only with
// --manage-rules: without it this process does not know which rules (if any) send pods here.
import type { Config } from './config.js';
import type { NodeEvent } from './kube/node-events.js';
import type { KubeClient } from './kube/rest.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import {
  startInterceptionMonitor,
  type InterceptionMonitor,
  type NetInterface,
} from './netfilter/interception.js';
import type { Clock } from './pods/types.js';
import { networkInterfaces } from 'node:os';
import { canonicalIpv6 } from './ip.js';

export interface SelfCheck {
  readonly monitor: InterceptionMonitor;
  stop(): Promise<void>;
}

export async function startSelfCheck(
  cfg: Config,
  d: { logger: Logger; metrics: Metrics; clock: Clock; kube?: () => Promise<KubeClient> },
  read: (() => Promise<NetInterface[]>) | undefined,
): Promise<SelfCheck> {
  const events = await nodeEventSender(cfg, d);
  const monitor = await startInterceptionMonitor({
    patterns: cfg.interfaces,
    // The pod view's own count (pods with their own network on this node), as operators see it.
    podsRunning: async () => (await d.metrics.podsKnown.get()).values[0]?.value ?? 0,
    intervalMs: cfg.reconcileIntervalMs,
    uplinks: () => uplinksHolding([cfg.hostIp, cfg.hostIpv6]),
    ...(read !== undefined ? { read } : {}),
    onReadError: (err) =>
      d.logger.warn({ err: err.message }, 'interception self-check cannot read the node interfaces'),
    onChange(now, before) {
      if (now.ok)
        d.logger.info({ before: before?.reason }, 'interception self-check: pod interfaces matched');
      else d.logger.error({ reason: now.reason, detail: now.detail }, 'interception self-check failed');
      void events?.send(
        now.ok
          ? {
              type: 'Normal',
              reason: 'IMDSGateInterceptionOk',
              message: 'every pod interface is intercepted',
            }
          : {
              type: 'Warning',
              reason: 'IMDSGateInterceptionBroken',
              message: `${now.reason}: ${now.detail}`,
            },
      );
    },
  });
  return {
    monitor,
    async stop() {
      monitor.stop();
    },
  };
}

/** Node Events need the API server: Kubernetes mode only (file mode has no node object to attach them to). */
async function nodeEventSender(
  cfg: Config,
  d: { logger: Logger; clock: Clock; kube?: () => Promise<KubeClient> },
): Promise<{ send: (e: NodeEvent) => Promise<void> } | undefined> {
  if (cfg.identityFile !== undefined || cfg.nodeName === undefined) return undefined;
  if (d.kube === undefined) return undefined;
  const { createNodeEvents } = await import('./kube/node-events.js');
  const client = await d.kube();
  return { send: createNodeEvents(client, { nodeName: cfg.nodeName, logger: d.logger, clock: d.clock }) };
}

/** Names of the interfaces (this network namespace) that hold one of the addresses: the node's uplinks. */
export function uplinksHolding(addrs: readonly (string | undefined)[]): Set<string> {
  const wanted = new Set(addrs.filter((a): a is string => a !== undefined).map(canonicalIpv6));
  const names = new Set<string>();
  for (const [name, list] of Object.entries(networkInterfaces()))
    if (list?.some((a) => wanted.has(canonicalIpv6(a.address)))) names.add(name);
  return names;
}
