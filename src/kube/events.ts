// Denials become Kubernetes Events on the pod, so `kubectl describe pod` says why it got no credentials
// (kiam's KiamRoleForbidden did the same). At most one Event per pod, reason and interval: a pod retrying
// in a loop must not flood the API server. Only `create` on events is needed.
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Clock, PodIdentity } from '../pods/types.js';
import type { KubeClient } from './rest.js';

/** A core/v1 Event as sent on the wire (timestamps as RFC 3339 strings). */
export interface EventBody {
  readonly apiVersion: 'v1';
  readonly kind: 'Event';
  readonly metadata: { generateName: string; namespace: string };
  readonly involvedObject: {
    apiVersion: 'v1';
    kind: 'Pod' | 'Node';
    name: string;
    namespace?: string;
    uid: string;
  };
  readonly reason: string;
  readonly message: string;
  readonly type: 'Normal' | 'Warning';
  readonly source: { component: string; host: string };
  readonly reportingComponent: string;
  readonly reportingInstance: string;
  readonly firstTimestamp: string;
  readonly lastTimestamp: string;
  readonly count: number;
}

/** One new Event about `about`, reported by this node's agent at `now` (ms); message capped at 1 KiB. */
export function eventBody(
  about: EventBody['involvedObject'],
  e: { type: EventBody['type']; reason: string; message: string },
  nodeName: string,
  now: number,
): EventBody {
  // metav1.Time is RFC 3339 at second precision.
  const at = new Date(now).toISOString().replace(/\.\d+Z$/, 'Z');
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { generateName: `${about.name}.imdsgate-`, namespace: about.namespace ?? 'default' },
    involvedObject: about,
    reason: e.reason,
    message: e.message.slice(0, 1024),
    type: e.type,
    source: { component: 'imdsgate', host: nodeName },
    reportingComponent: 'imdsgate',
    reportingInstance: nodeName,
    firstTimestamp: at,
    lastTimestamp: at,
    count: 1,
  };
}

export interface DenialEvents {
  denied(pod: PodIdentity, reason: string, detail: string): void;
}

export interface DenialEventOptions {
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly nodeName: string;
  readonly intervalMs?: number;
  /** Tests inject the create call; production posts to the API server. */
  readonly create?: (namespace: string, body: EventBody) => Promise<unknown>;
}

export function createDenialEvents(client: KubeClient | undefined, o: DenialEventOptions): DenialEvents {
  const interval = o.intervalMs ?? 300_000;
  const lastSent = new Map<string, number>();
  const post = (namespace: string, body: EventBody) => {
    if (client === undefined) return Promise.reject(new Error('no Kubernetes client'));
    return client.request('POST', `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`, { body });
  };
  const create = o.create ?? post;

  function prune(now: number) {
    if (lastSent.size < 5000) return;
    for (const [k, t] of lastSent) if (now - t >= interval) lastSent.delete(k);
  }

  return {
    denied(pod, reason, detail) {
      const now = o.clock();
      const key = `${pod.uid}|${pod.namespace}/${pod.name}|${reason}`;
      const prev = lastSent.get(key);
      if (prev !== undefined && now - prev < interval) {
        o.metrics.eventsEmitted.inc({ result: 'suppressed' });
        return;
      }
      prune(now);
      lastSent.set(key, now);
      const body = eventBody(
        { apiVersion: 'v1', kind: 'Pod', name: pod.name, namespace: pod.namespace, uid: pod.uid },
        { type: 'Warning', reason: 'IMDSGateDenied', message: `no IAM credentials: ${reason}: ${detail}` },
        o.nodeName,
        now,
      );
      create(pod.namespace, body).then(
        () => o.metrics.eventsEmitted.inc({ result: 'sent' }),
        (err: unknown) => {
          o.metrics.eventsEmitted.inc({ result: 'error' });
          o.logger.warn(
            { namespace: pod.namespace, pod: pod.name, err: (err as Error).message },
            'could not post Event',
          );
        },
      );
    },
  };
}
